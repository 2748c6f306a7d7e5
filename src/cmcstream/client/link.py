"""One WebSocket connection of a stream, kept alive and re-established.

A link owns a connection's lifecycle: connect with the key, wait for the
``welcome``, send its subscriptions again after every reconnect, answer
requests, send JSON pings every ``ping_interval_ms``, and watch for silence.
It does the I/O and keeps the time; what each frame means, what to send
after a reconnect and what an end calls for are decided by its
:class:`~cmcstream.client.session.ClientSession`, which classifies every end
of a connection:

* fatal: close 4100/4101/4102, or an auth error frame (1002–1010) on the
  connection: the stream fails with the typed error and never retries;
* limited: close 4004: retried with the longer backoff;
* anything else (1000, 1001, 1011–1014, a reset, silence): retried with backoff,
  and reported as an outage once the subscriptions are back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from cmcstream.client.backoff import Backoff
from cmcstream.client.frames import Envelope, FrameDecoder, Push
from cmcstream.client.items import Item
from cmcstream.client.session import (
    ABNORMAL,
    SILENCE,
    Answer,
    ClientSession,
    Ending,
    GiveUp,
    Notice,
    Refused,
    Verdict,
    restore_plan,
)
from cmcstream.exceptions import CMCStreamError, RequestTimeout, StreamClosed
from cmcstream.protocol.handshake import API_KEY_HEADER

__all__ = ["ConnectionState", "Link", "LinkHost", "LinkOptions", "Outage", "StateChange"]

logger = logging.getLogger("cmcstream.client")


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outage:
    """A time when a connection's subscriptions received nothing.

    Attributes:
        link: which connection of the stream.
        start: the last frame received before the drop, epoch seconds.
        end: when the subscriptions were active again, epoch seconds.
        reason: what ended the connection.
    """

    link: int
    start: float
    end: float
    reason: str

    @property
    def start_ms(self) -> int:
        return int(self.start * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end * 1000)

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class StateChange:
    """A connection changed state; after a reconnect, ``outage`` says what was missed."""

    link: int
    state: ConnectionState
    previous: ConnectionState
    reason: str = ""
    outage: Outage | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """How a link connects and stays alive.

    Attributes:
        url: the endpoint.
        api_key: sent in the ``X-CMC_PRO_API_KEY`` header.
        reconnect: re-establish dropped connections.
        backoff: the reconnect schedule.
        ping_interval_s: overrides the welcome's ``ping_interval_ms``.
        silence_factor: a connection that received nothing for this many ping
            intervals is dead (the server answers every ping, so a live one never is).
        open_timeout_s: limit for the TCP, TLS and WebSocket handshakes plus the welcome.
        request_timeout_s: limit for the answer to a request.
        max_frame_bytes: largest frame accepted from the server.
    """

    url: str
    api_key: str
    reconnect: bool = True
    backoff: Backoff = field(default_factory=Backoff)
    ping_interval_s: float | None = None
    silence_factor: float = 3.0
    open_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    max_frame_bytes: int = 4 * 1024 * 1024


class LinkHost(Protocol):
    """What a link needs from its stream."""

    decoder: FrameDecoder

    def next_id(self) -> int: ...

    def deliver_nowait(self, push: Push[Any]) -> bool: ...

    async def deliver(self, push: Push[Any]) -> None: ...

    def on_frame(self, link: int, frame: str, received: float) -> None: ...

    def on_state(self, change: StateChange) -> None: ...

    def on_restore_error(self, link: int, item: Item, error: CMCStreamError) -> None: ...

    def on_fatal(self, error: BaseException) -> None: ...


class _Ended(Exception):
    """A connection ended the way ``ending`` says."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.reason)
        self.ending = ending


class Link:
    """One connection and everything it is subscribed to."""

    def __init__(self, index: int, options: LinkOptions, host: LinkHost) -> None:
        self.index = index
        self.options = options
        self._host = host
        self.items: dict[Item, None] = {}  # what the server holds for this link, in order
        self.reserved = 0  # items in flight towards this link
        self.state = ConnectionState.CONNECTING
        self.connects = 0
        self.session: ClientSession[asyncio.Future[Envelope]] = ClientSession(
            index,
            host.next_id,
            backoff=options.backoff,
            reconnect=options.reconnect,
            ping_interval_s=options.ping_interval_s,
        )
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._last_frame = time.monotonic()
        self._last_frame_wall = time.time()
        self._blocked = False
        self._silent = False
        self._ping_interval_s = 10.0
        self._outage: tuple[float, str] | None = None  # (start, reason) while down

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; returns once the first connection is open.

        Raises:
            AuthError: the key is refused.
            ConnectionLost: the first connection could not be made.
        """
        self._task = asyncio.create_task(self._run(), name=f"cmcstream-link-{self.index}")
        await asyncio.shield(self._opened)

    async def close(self) -> None:
        """Close the connection and stop reconnecting."""
        self._closing = True
        self._fail_pending(StreamClosed("the stream was closed"))
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self.options.open_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._set_state(ConnectionState.CLOSED, "closed by the client")

    @property
    def sub_limit(self) -> int:
        """The per-connection subscription limit the server announced."""
        return self.session.sub_limit

    @property
    def sub_count(self) -> int:
        """Subscriptions the server counts on this connection."""
        return self.session.sub_count

    @property
    def capacity(self) -> int:
        """How many more items this link can take."""
        return max(0, self.sub_limit - len(self.items) - self.reserved)

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, message: dict[str, Any], on_ack: Callable[[Envelope], None] | None = None
    ) -> Envelope:
        """Send a request once the link is open; return its ``ack``.

        ``on_ack`` runs when the ack is read, before anything read after it,
        so the subscription state never lags the server's. A request cut off
        by a reconnect is sent again on the new connection.

        Raises:
            RequestError: the server answered with an ``error`` frame.
            RequestTimeout: no answer in time.
            AuthError, ConnectionLost, StreamClosed: the link is gone.
        """
        deadline = time.monotonic() + self.options.request_timeout_s
        while True:
            await self._wait_ready(deadline)
            ws = self._ws
            assert ws is not None
            try:
                return await self._exchange(ws, message, on_ack, deadline)
            except (ConnectionClosed, _Retry):
                continue  # the reconnect restores what was acked; send the rest again

    async def _exchange(
        self,
        ws: ClientConnection,
        message: dict[str, Any],
        on_ack: Callable[[Envelope], None] | None,
        deadline: float,
    ) -> Envelope:
        """Send one request on ``ws`` and wait for its answer until ``deadline``."""
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        rid, frame = self.session.request(message, future, on_ack)
        try:
            await ws.send(frame)
            return await asyncio.wait_for(
                asyncio.shield(future), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise RequestTimeout(
                f"no answer to {message.get('method')} within {self.options.request_timeout_s:g} s"
            ) from None
        finally:
            self.session.forget(rid)

    async def _wait_ready(self, deadline: float) -> None:
        while not self._ready.is_set():
            if self._failure is not None:
                raise self._failure
            if self._closing:
                raise StreamClosed("the stream was closed")
            try:
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RequestTimeout("the connection did not come back in time") from None
        if self._failure is not None:
            raise self._failure

    def _fail_pending(self, error: BaseException) -> None:
        for future in self.session.drain():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: a caller may have gone

    # -- the supervisor ----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            connected_at = time.monotonic()
            try:
                await self._connection()
            except _Ended as end:
                ending = end.ending
            except InvalidStatus as exc:
                ending = ClientSession.rejected(exc.response.status_code, _describe(exc))
            except (OSError, TimeoutError, WebSocketException) as exc:
                ending = ClientSession.failed(_describe(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("link %d failed", self.index)
                ending = ClientSession.failed(_describe(exc))
            if ending.verdict is Verdict.FATAL:
                assert ending.error is not None
                self._fatal(ending.error)
                return
            self._ready.clear()
            self._fail_pending(_Retry())
            if self._closing:
                return
            if self._outage is None:
                # Data may be missing from the last frame received on; the
                # outage is named for what ended the connection, not for the
                # failed attempts after it.
                self._outage = (self._last_frame_wall, ending.reason)
            step = self.session.next_step(
                ending, opened=self._opened.done(), uptime=time.monotonic() - connected_at
            )
            if isinstance(step, GiveUp):
                self._fatal(step.error)
                return
            self._set_state(ConnectionState.RECONNECTING, ending.reason)
            logger.info(
                "link %d: %s; reconnecting in %.2f s", self.index, ending.reason, step.delay
            )
            await asyncio.sleep(step.delay)

    def _fatal(self, error: BaseException) -> None:
        self._failure = error
        self._ready.set()  # wake waiting requests: they raise the failure
        self._fail_pending(error)
        if not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()
        self._set_state(ConnectionState.FAILED, str(error), error=error)
        self._host.on_fatal(error)

    async def _connection(self) -> None:
        """One connection, from the handshake to its end (always raises)."""
        opts = self.options
        ws = await ws_connect(
            opts.url,
            additional_headers={API_KEY_HEADER: opts.api_key},
            compression=None,
            open_timeout=opts.open_timeout_s,
            ping_interval=None,  # the protocol's keep-alive is the JSON ping
            max_size=opts.max_frame_bytes,
            max_queue=64,
        )
        self._ws = ws
        self.connects += 1
        self.session.connected()
        try:
            await self._welcome(ws)
            self._silent = False
            reader = asyncio.create_task(self._read(ws), name=f"cmcstream-read-{self.index}")
            keeper = asyncio.create_task(self._keep_alive(ws), name=f"cmcstream-ping-{self.index}")
            try:
                try:
                    await self._restore()
                except _Retry:
                    await asyncio.gather(reader, return_exceptions=True)
                    raise self._ended(ws, reader) from None
                self._ready.set()
                outage = None
                if self._outage is not None:
                    start, why = self._outage
                    outage = Outage(self.index, start, time.time(), why)
                    self._outage = None
                if not self._opened.done():
                    self._opened.set_result(None)
                self._set_state(ConnectionState.OPEN, "connected", outage=outage)
                await asyncio.shield(reader)
            finally:
                keeper.cancel()
                reader.cancel()
                await asyncio.gather(keeper, reader, return_exceptions=True)
            raise self._ended(ws, reader)
        finally:
            self._ready.clear()
            self._ws = None
            if ws.transport is not None:
                ws.transport.abort()

    async def _welcome(self, ws: ClientConnection) -> None:
        """Read the ``welcome``; an error frame or a close before it ends the connection."""
        try:
            async with asyncio.timeout(self.options.open_timeout_s):
                while True:
                    frame = await ws.recv(decode=True)
                    assert isinstance(frame, str)
                    received = time.time()
                    self._host.on_frame(self.index, frame, received)
                    env = self._host.decoder.envelope(frame)
                    if env is None:
                        continue
                    interval = self.session.welcome(env)
                    if interval is not None:
                        self._touch(received)
                        self._ping_interval_s = interval
                        return
        except ConnectionClosed as exc:
            raise self._ended_by(exc) from None

    def _ended(self, ws: ClientConnection, reader: asyncio.Task[None]) -> _Ended:
        exc = reader.exception() if reader.done() and not reader.cancelled() else None
        if isinstance(exc, _Ended):
            return exc
        if isinstance(exc, ConnectionClosed):
            return self._ended_by(exc)
        if self._silent:
            return _Ended(SILENCE)
        code = ws.close_code if ws.close_code is not None else ABNORMAL
        return _Ended(self.session.closed(code, ws.close_reason or ""))

    def _ended_by(self, exc: ConnectionClosed) -> _Ended:
        if self._silent:
            return _Ended(SILENCE)
        rcvd = exc.rcvd
        if rcvd is None:
            return _Ended(self.session.closed(None))
        return _Ended(self.session.closed(rcvd.code, rcvd.reason))

    # -- reading -----------------------------------------------------------------------------

    def _touch(self, received: float) -> None:
        self._last_frame = time.monotonic()
        self._last_frame_wall = received

    async def _read(self, ws: ClientConnection) -> None:
        host = self._host
        decoder = host.decoder
        refused = False
        try:
            async for frame in ws:
                received = time.time()
                self._last_frame = time.monotonic()
                self._last_frame_wall = received
                assert isinstance(frame, str)
                host.on_frame(self.index, frame, received)
                push = decoder.data(frame, received)
                if push is None:
                    env = decoder.envelope(frame)
                    if env is None:
                        continue
                    if env.type != "data":
                        refused = self._control(env) or refused
                        continue
                    push = decoder.push(env, received)
                    if push is None:
                        continue
                if not host.deliver_nowait(push):
                    self._blocked = True
                    try:
                        await host.deliver(push)
                    finally:
                        self._blocked = False
                        self._last_frame = time.monotonic()
        except ConnectionClosed as exc:
            raise self._ended_by(exc) from None
        finally:
            # Requests in flight will never be answered on this connection.
            self._fail_pending(_Retry())
        if refused:
            raise _Ended(self.session.closed(ws.close_code or 1000, ws.close_reason or ""))

    def _control(self, env: Envelope) -> bool:
        """Handle a frame that is not a push; ``True``: the key was refused, the link ends."""
        outcome = self.session.receive(env)
        if isinstance(outcome, Answer):
            future, result = outcome.waiter, outcome.result
            if not future.done():
                if isinstance(result, Envelope):
                    future.set_result(result)
                else:
                    future.set_exception(result)
        elif isinstance(outcome, Notice):
            logger.warning("link %d: server error %s", self.index, outcome.error)
        return isinstance(outcome, Refused)

    async def _keep_alive(self, ws: ClientConnection) -> None:
        """JSON pings every interval; aborts the connection when nothing arrives for too long."""
        interval = self._ping_interval_s
        limit = interval * self.options.silence_factor
        tick = min(interval, limit / 4)
        next_ping = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + interval
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(self.session.ping())
            # While the reader waits for room in the buffer it reads nothing; that is
            # the application's pace, not a dead server.
            if not self._blocked and now - self._last_frame > limit:
                logger.warning("link %d: nothing received for %.1f s", self.index, limit)
                self._silent = True
                if ws.transport is not None:
                    ws.transport.abort()
                return

    # -- restoring ---------------------------------------------------------------------------

    async def _restore(self) -> None:
        """Subscribe again to everything this link holds, before it counts as open.

        The link's items stay as they are while this runs, so a connection that
        drops again mid-way loses none of them; only what the server refuses is
        dropped (and reported).
        """
        plan = restore_plan(self.items)
        if not plan:
            return
        ws = self._ws
        assert ws is not None
        deadline = time.monotonic() + self.options.request_timeout_s
        results = await asyncio.gather(
            *(self._exchange(ws, step.message, None, deadline) for step in plan),
            return_exceptions=True,
        )
        for step, result in zip(plan, results, strict=True):
            members = step.members
            if isinstance(result, _Retry | ConnectionClosed):
                raise _Retry from None
            if isinstance(result, RequestTimeout):
                raise TimeoutError(str(result))  # a reconnect, like any other silence
            if isinstance(result, CMCStreamError):
                for item in members:
                    self.items.pop(item, None)
                    self._host.on_restore_error(self.index, item, result)
            elif isinstance(result, BaseException):
                raise result

    # -- state ---------------------------------------------------------------------------------

    def _set_state(
        self,
        state: ConnectionState,
        reason: str,
        *,
        outage: Outage | None = None,
        error: BaseException | None = None,
    ) -> None:
        if state is self.state and outage is None and state is not ConnectionState.RECONNECTING:
            return  # every failed reconnect attempt is reported, with its reason
        previous, self.state = self.state, state
        self._host.on_state(StateChange(self.index, state, previous, reason, outage, error))


class _Retry(Exception):
    """A request was cut off by a reconnect; it is sent again."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
