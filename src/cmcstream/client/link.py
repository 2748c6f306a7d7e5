"""One WebSocket connection of a stream, kept alive and re-established.

A link owns a connection's lifecycle: connect with the key, wait for the
``welcome``, send its subscriptions again after every reconnect, answer
requests, send JSON pings every ``ping_interval_ms``, and watch for silence.
It classifies every end of a connection:

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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from cmcstream.client.backoff import Backoff
from cmcstream.client.frames import Envelope, FrameDecoder, Push
from cmcstream.client.items import Item, buckets, request_of
from cmcstream.exceptions import (
    AuthError,
    CMCStreamError,
    ConnectionLimited,
    ConnectionLost,
    RequestTimeout,
    StreamClosed,
    auth_error_for_close,
    error_for_status,
)

__all__ = ["ConnectionState", "Link", "LinkHost", "LinkOptions", "Outage", "StateChange"]

logger = logging.getLogger("cmcstream.client")

API_KEY_HEADER = "X-CMC_PRO_API_KEY"
LIMITED_CLOSE = 4004
_encode = msgspec.json.Encoder().encode


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
    """How a connection ended: the close code, the reason, and a fatal error if any."""

    def __init__(self, code: int, reason: str, fatal: BaseException | None = None) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason, self.fatal = code, reason, fatal


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Envelope]
    on_ack: Callable[[Envelope], None] | None


class Link:
    """One connection and everything it is subscribed to."""

    def __init__(self, index: int, options: LinkOptions, host: LinkHost) -> None:
        self.index = index
        self.options = options
        self._host = host
        self.items: dict[Item, None] = {}  # what the server holds for this link, in order
        self.reserved = 0  # items in flight towards this link
        self.sub_limit = 100
        self.sub_count = 0
        self.state = ConnectionState.CONNECTING
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._pending: dict[Any, _Pending] = {}
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
        self._rng = random.Random()

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
        rid = self._host.next_id()
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(future, on_ack)
        try:
            await ws.send(_encode({"id": rid, **message}).decode())
            return await asyncio.wait_for(
                asyncio.shield(future), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise RequestTimeout(
                f"no answer to {message.get('method')} within {self.options.request_timeout_s:g} s"
            ) from None
        finally:
            self._pending.pop(rid, None)

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
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
                pending.future.exception()  # retrieved here: a caller may have gone

    # -- the supervisor ----------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        reason = ""
        while not self._closing:
            limited = False
            connected_at = time.monotonic()
            try:
                await self._session()
            except _Ended as end:
                if end.fatal is not None:
                    self._fatal(end.fatal)
                    return
                reason = f"closed {end.code}" + (f" ({end.reason})" if end.reason else "")
                limited = end.code == LIMITED_CLOSE
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = _describe(exc)
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    self._fatal(
                        auth_error_for_close(4100, f"HTTP {exc.response.status_code}")
                        or ConnectionLost(reason)
                    )
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("link %d failed", self.index)
                reason = _describe(exc)
            self._ready.clear()
            self._fail_pending(_Retry())
            if self._closing:
                return
            if self._outage is None:
                # Data may be missing from the last frame received on; the
                # outage is named for what ended the connection, not for the
                # failed attempts after it.
                self._outage = (self._last_frame_wall, reason)
            if time.monotonic() - connected_at >= self.options.backoff.reset_after_s:
                attempt = 0
            attempt += 1
            max_attempts = self.options.backoff.max_attempts
            if (
                not self._opened.done()
                or not self.options.reconnect
                or (max_attempts is not None and attempt > max_attempts)
            ):
                kind = ConnectionLimited if limited else ConnectionLost
                self._fatal(kind(f"connection {self.index} lost: {reason}"))
                return
            self._set_state(ConnectionState.RECONNECTING, reason)
            delay = self.options.backoff.delay(attempt, limited=limited, rng=self._rng)
            logger.info("link %d: %s; reconnecting in %.2f s", self.index, reason, delay)
            await asyncio.sleep(delay)

    def _fatal(self, error: BaseException) -> None:
        self._failure = error
        self._ready.set()  # wake waiting requests: they raise the failure
        self._fail_pending(error)
        if not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()
        self._set_state(ConnectionState.FAILED, str(error), error=error)
        self._host.on_fatal(error)

    async def _session(self) -> None:
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
        """Read the ``welcome``; an error frame or a close before it ends the session."""
        auth_error: BaseException | None = None
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
                    if env.type == "welcome":
                        self._touch(received)
                        interval = self.options.ping_interval_s
                        if interval is None and env.ping_interval_ms:
                            interval = env.ping_interval_ms / 1000
                        self._ping_interval_s = interval or 10.0
                        return
                    if env.type == "error" and env.status is not None:
                        auth_error = error_for_status(env.status)
        except ConnectionClosed as exc:
            raise self._ended_by(exc, auth_error) from None

    def _ended(self, ws: ClientConnection, reader: asyncio.Task[None]) -> _Ended:
        exc = reader.exception() if reader.done() and not reader.cancelled() else None
        if isinstance(exc, _Ended):
            return exc
        if isinstance(exc, ConnectionClosed):
            return self._ended_by(exc, None)
        if self._silent:
            return _Ended(1006, "silence: no frame within the watchdog limit")
        code = ws.close_code if ws.close_code is not None else 1006
        return _Ended(code, ws.close_reason or "")

    def _ended_by(self, exc: ConnectionClosed, auth_error: BaseException | None) -> _Ended:
        if self._silent:
            return _Ended(1006, "silence: no frame within the watchdog limit")
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else "connection lost"
        fatal: BaseException | None = auth_error_for_close(code, reason)
        if isinstance(auth_error, AuthError):
            fatal = auth_error  # the error frame names the cause more precisely than 4100
        elif isinstance(auth_error, ConnectionLimited):
            code = LIMITED_CLOSE
        return _Ended(code, reason, fatal)

    # -- reading -----------------------------------------------------------------------------

    def _touch(self, received: float) -> None:
        self._last_frame = time.monotonic()
        self._last_frame_wall = received

    async def _read(self, ws: ClientConnection) -> None:
        host = self._host
        decoder = host.decoder
        fatal: BaseException | None = None
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
                        fatal = self._control(env) or fatal
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
            raise self._ended_by(exc, fatal) from None
        finally:
            # Requests in flight will never be answered on this connection.
            self._fail_pending(_Retry())
        if fatal is not None:
            raise _Ended(ws.close_code or 1000, ws.close_reason or "", fatal)

    def _control(self, env: Envelope) -> AuthError | None:
        """Handle a frame that is not a push; returns an auth error that ends the link."""
        if env.type == "ack":
            self._answer(env)
        elif env.type == "error":
            waiting = self._pending.get(env.id) if env.id is not None else None
            error = error_for_status(env.status or {})
            if waiting is not None and not waiting.future.done():
                waiting.future.set_exception(error)
            elif isinstance(error, AuthError):
                return error  # 1010 and friends: the close that follows is final
            else:
                logger.warning("link %d: server error %s", self.index, error)
        # pong, welcome and unknown types only prove the link is alive
        return None

    def _answer(self, env: Envelope) -> None:
        if env.sub_count is not None:
            self.sub_count = env.sub_count
        if env.sub_limit is not None:
            self.sub_limit = env.sub_limit
        waiting = self._pending.get(env.id) if env.id is not None else None
        if waiting is None or waiting.future.done():
            return
        if waiting.on_ack is not None:
            waiting.on_ack(env)
        waiting.future.set_result(env)

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
                    await ws.send(_encode({"id": self._host.next_id(), "method": "ping"}).decode())
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
        groups = buckets(list(self.items))
        if not groups:
            return
        ws = self._ws
        assert ws is not None
        deadline = time.monotonic() + self.options.request_timeout_s
        results = await asyncio.gather(
            *(
                self._exchange(ws, self._resubscription(members), None, deadline)
                for members in groups
            ),
            return_exceptions=True,
        )
        for members, result in zip(groups, results, strict=True):
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

    @staticmethod
    def _resubscription(members: list[Item]) -> dict[str, Any]:
        channel, params = request_of(members)
        return {"method": "subscribe", "channel": channel, "params": params}

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
