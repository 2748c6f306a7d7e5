"""The stream: subscriptions over one or more connections, pushes in one iterator.

:func:`connect` opens a :class:`Stream`. The stream spreads subscriptions over
as many connections as the per-connection limit requires (up to the key's
connection limit, checked before anything is sent), keeps every connection
alive and re-subscribed (:mod:`cmcstream.client.link`), drops duplicate events
(:mod:`cmcstream.client.dedupe`), and hands pushes to the application through
a bounded buffer (:mod:`cmcstream.client.buffer`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Any

from cmcstream.client.backoff import Backoff
from cmcstream.client.buffer import Overflow, PushBuffer
from cmcstream.client.dedupe import Deduper
from cmcstream.client.frames import Ack, Envelope, FrameDecoder, Numbers, Push
from cmcstream.client.items import Item, request_of, split
from cmcstream.client.link import ConnectionState, Link, LinkOptions, Outage, StateChange
from cmcstream.exceptions import CapacityError, CMCStreamError, MissingKey, StreamClosed
from cmcstream.protocol.channels import DEDUPED_CHANNELS

__all__ = ["DEFAULT_URL", "Stream", "connect"]

logger = logging.getLogger("cmcstream.client")

DEFAULT_URL = "wss://pro-stream.coinmarketcap.com/v1"
KEY_ENV = "CMC_PRO_API_KEY"

FrameHook = Callable[[int, str, float], None]
StateHook = Callable[[StateChange], None]


class Stream:
    """A live stream of pushes from the CoinMarketCap WebSocket API (or cmcstream).

    Use :func:`connect` rather than building one. Iterate it for pushes::

        async with cmcstream.connect(api_key=key) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
            async for push in stream:
                print(push.params, push.data.p)

    After a fatal error (a refused key, exhausted credits) the iterator first
    yields what was received, then raises the error.
    """

    def __init__(
        self,
        api_key: str | None = None,
        url: str = DEFAULT_URL,
        *,
        numbers: Numbers = "float",
        raw: bool = False,
        buffer_size: int = 10_000,
        overflow: Overflow | str = Overflow.WAIT,
        dedupe: bool = True,
        dedupe_window: int = 100_000,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        max_connections: int = 10,
        ping_interval: float | None = None,
        silence_factor: float = 3.0,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        on_state: StateHook | None = None,
        on_frame: FrameHook | None = None,
    ) -> None:
        """
        Args:
            api_key: the key; defaults to the ``CMC_PRO_API_KEY`` environment variable.
            url: the endpoint; defaults to CoinMarketCap's.
            numbers: ``"float"``, or ``"decimal"`` for money and quantities as
                :class:`~decimal.Decimal` with exactly the digits sent.
            raw: payloads as plain dicts instead of typed structs.
            buffer_size: pushes held for the application at most.
            overflow: what a full buffer does (:class:`~cmcstream.client.buffer.Overflow`).
            dedupe: drop repeated swaps and liquidity events (same ``tx`` and log index).
            dedupe_window: how many event identities to remember for that.
            reconnect: re-establish dropped connections and their subscriptions.
            backoff: the reconnect schedule.
            max_connections: connections the key may hold (10 on CoinMarketCap plans).
            ping_interval: seconds between pings; defaults to what the welcome says.
            silence_factor: ping intervals without any frame before a connection counts as dead.
            open_timeout: seconds for connecting, up to the welcome.
            request_timeout: seconds for the answer to a request.
            on_state: called with every :class:`StateChange` of a connection.
            on_frame: called with (connection, frame text, receive time) for every
                frame, before it is decoded: for recording.
        """
        key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        if not key:
            raise MissingKey(f"no API key: pass api_key or set {KEY_ENV}")
        if max_connections <= 0:
            raise ValueError("max_connections must be positive")
        self.url = url
        self.decoder = FrameDecoder(numbers, typed=not raw)
        self._options = LinkOptions(
            url=url,
            api_key=key,
            reconnect=reconnect,
            backoff=backoff or Backoff(),
            ping_interval_s=ping_interval,
            silence_factor=silence_factor,
            open_timeout_s=open_timeout,
            request_timeout_s=request_timeout,
        )
        self.max_connections = max_connections
        self._buffer = PushBuffer(buffer_size, overflow)
        self._deduper = Deduper(dedupe_window) if dedupe else None
        self._links: list[Link] = []
        self._where: dict[Item, Link] = {}
        self._ids = itertools.count(1)
        self._on_state = on_state
        self._on_frame = on_frame
        self._lock = asyncio.Lock()
        self._closed = False
        self._failure: BaseException | None = None
        self.outages: collections.deque[Outage] = collections.deque(maxlen=1000)
        """Every outage, newest last (the last thousand)."""
        self.errors: collections.deque[tuple[Item, CMCStreamError]] = collections.deque(maxlen=1000)
        """Subscriptions the server refused when they were restored after a reconnect."""
        self.received = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> Stream:
        """Open the first connection (waits for its ``welcome``).

        Raises:
            AuthError: the key is refused; ConnectionLost: the server cannot be reached.
        """
        if not self._links:
            await self._add_link()
        return self

    async def close(self) -> None:
        """Close every connection; iteration ends once the buffer is drained."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(link.close() for link in self._links), return_exceptions=True)
        self._buffer.close(self._failure)

    async def __aenter__(self) -> Stream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _add_link(self) -> Link:
        link = Link(len(self._links), self._options, self)
        self._links.append(link)
        try:
            await link.start()
        except BaseException:
            self._links.remove(link)
            raise
        return link

    # -- what links call -----------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def deliver_nowait(self, push: Push[Any]) -> bool:
        """Take ``push`` if that needs no waiting; ``False``: call :meth:`deliver`."""
        if self._buffer.full:
            return False
        if self._keep(push):
            self._buffer.put_nowait(push)
        return True

    async def deliver(self, push: Push[Any]) -> None:
        if self._keep(push):
            await self._buffer.put(push)

    def _keep(self, push: Push[Any]) -> bool:
        """Count ``push`` in; ``False`` when it repeats an event already delivered."""
        self.received += 1
        deduper = self._deduper
        return (
            deduper is None
            or push.channel not in DEDUPED_CHANNELS
            or not deduper.is_duplicate(push.channel, push.data)
        )

    def on_frame(self, link: int, frame: str, received: float) -> None:
        if self._on_frame is not None:
            try:
                self._on_frame(link, frame, received)
            except Exception:  # a faulty callback must not stop the connection
                logger.exception("on_frame callback failed")

    def on_state(self, change: StateChange) -> None:
        if change.outage is not None:
            self.outages.append(change.outage)
        if self._on_state is not None:
            try:
                self._on_state(change)
            except Exception:  # a faulty callback must not stop the connection
                logger.exception("on_state callback failed")

    def on_restore_error(self, link: int, item: Item, error: CMCStreamError) -> None:
        logger.warning("link %d: %s not restored: %s", link, item.params(), error)
        if self._where.get(item) is self._links[link]:
            del self._where[item]
        self.errors.append((item, error))

    def on_fatal(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._buffer.close(error)

    # -- requests ------------------------------------------------------------------------------

    async def subscribe(
        self, channel: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> Ack:
        """Subscribe; params as a dict or as keywords (``crypto_ids=[1, 1027]``).

        More subscriptions than one connection holds are spread over several.

        Raises:
            CapacityError: the new subscriptions would need more connections
                than ``max_connections`` (nothing is sent).
            RequestError: the server refused the request (its ``status`` is on
                the error). When a request went to several connections and
                one refused, the others' subscriptions stay.
        """
        items = split(channel, {**(params or {}), **kwargs})
        async with self._lock:
            self._check_open()
            plan, reserved = await self._place(items)
        try:
            envs = await asyncio.gather(
                *(self._send(link, "subscribe", channel, part) for link, part in plan.items())
            )
        finally:
            self._release(reserved)
        return self._ack(channel, envs)

    async def unsubscribe(
        self, channel: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> Ack:
        """Unsubscribe the given subscriptions, or the whole channel when no params are given."""
        self._check_open()
        merged = {**(params or {}), **kwargs}
        if not merged:
            links = [link for link in self._links if link.state is not ConnectionState.FAILED]
            envs = await asyncio.gather(
                *(self._send(link, "unsubscribe", channel, None) for link in links)
            )
            return self._ack(channel, envs)
        by_link: dict[Link, list[Item]] = {}
        for item in split(channel, merged):
            by_link.setdefault(self._where.get(item) or self._links[0], []).append(item)
        envs = await asyncio.gather(
            *(self._send(link, "unsubscribe", channel, part) for link, part in by_link.items())
        )
        return self._ack(channel, envs)

    async def unsubscribe_all(self) -> Ack:
        """Drop every subscription on every connection."""
        self._check_open()
        envs = await asyncio.gather(
            *(self._send(link, "unsubscribe_all", None, None) for link in self._links)
        )
        return self._ack(None, envs)

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise StreamClosed("the stream was closed")

    async def _place(
        self, items: list[Item]
    ) -> tuple[dict[Link, list[Item]], list[tuple[Link, int]]]:
        """Which connection each item goes to, and the room reserved on each for the
        new ones until their acks arrive; opens connections as needed."""
        plan: dict[Link, list[Item]] = {}
        fresh: list[Item] = []
        for item in items:
            link = self._where.get(item)
            if link is not None:
                plan.setdefault(link, []).append(item)
            else:
                fresh.append(item)
        free = sum(link.capacity for link in self._links)
        limit = self._links[0].sub_limit if self._links else 100
        room = free + (self.max_connections - len(self._links)) * limit
        if len(fresh) > room:
            raise CapacityError(
                f"{len(fresh)} new subscriptions do not fit: {room} more fit in "
                f"{self.max_connections} connections of {limit}"
            )
        pending = collections.deque(fresh)
        reserved: list[tuple[Link, int]] = []
        try:
            while pending:
                link = next((lk for lk in self._links if lk.capacity > 0), None)
                if link is None:
                    link = await self._add_link()
                take = min(link.capacity, len(pending))
                plan.setdefault(link, []).extend(pending.popleft() for _ in range(take))
                link.reserved += take
                reserved.append((link, take))
        except BaseException:
            self._release(reserved)
            raise
        return plan, reserved

    @staticmethod
    def _release(reserved: list[tuple[Link, int]]) -> None:
        for link, count in reserved:
            link.reserved -= count

    async def _send(
        self, link: Link, method: str, channel: str | None, items: list[Item] | None
    ) -> Envelope:
        message: dict[str, Any] = {"method": method}
        if channel is not None:
            message["channel"] = channel
        if items:
            # Items of one call share their channel and scalar params: one request.
            message["params"] = request_of(items)[1]
        return await link.request(message, self._applier(link, method, channel, items or []))

    def _applier(
        self, link: Link, method: str, channel: str | None, items: list[Item]
    ) -> Callable[[Envelope], None]:
        """What an ack changes in the subscription state; runs as the ack is read."""

        def apply(_: Envelope) -> None:
            if method == "subscribe":
                for item in items:
                    link.items[item] = None
                    self._where[item] = link
            elif method == "unsubscribe" and items:
                for item in items:
                    link.items.pop(item, None)
                    if self._where.get(item) is link:
                        del self._where[item]
            else:  # a whole channel, or everything
                for item in list(link.items):
                    if channel is None or item.channel == channel:
                        del link.items[item]
                        if self._where.get(item) is link:
                            del self._where[item]

        return apply

    def _ack(self, channel: str | None, envs: list[Envelope]) -> Ack:
        limit = next((e.sub_limit for e in envs if e.sub_limit is not None), None)
        return Ack(
            channel=channel,
            sub_count=sum(link.sub_count for link in self._links),
            sub_limit=limit
            if limit is not None
            else (self._links[0].sub_limit if self._links else 100),
            duplicate=bool(envs) and all(e.duplicate for e in envs),
            connections=len(envs),
        )

    # -- pushes ----------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Push[Any]]:
        return self

    async def __anext__(self) -> Push[Any]:
        push = self._buffer.get_nowait()
        return push if push is not None else await self._buffer.get()

    async def recv(self, timeout: float | None = None) -> Push[Any]:  # noqa: ASYNC109 - mirrors SyncClient.recv
        """The next push.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            StreamClosed: the stream is closed and drained.
            AuthError, ConnectionLost: the stream failed (after its last push).
        """
        push = self._buffer.get_nowait()
        if push is not None:
            return push
        try:
            return await asyncio.wait_for(self._buffer.get(), timeout)
        except StopAsyncIteration:
            raise StreamClosed("the stream was closed") from None

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The stream's state: the worst of its connections'."""
        if self._failure is not None:
            return ConnectionState.FAILED
        if self._closed:
            return ConnectionState.CLOSED
        states = {link.state for link in self._links}
        for state in (ConnectionState.RECONNECTING, ConnectionState.CONNECTING):
            if state in states:
                return state
        return ConnectionState.OPEN if states else ConnectionState.CONNECTING

    @property
    def connections(self) -> int:
        """Connections the stream holds."""
        return len(self._links)

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """Every active subscription: ``channel`` and the params of one identity."""
        return [{"channel": item.channel, **item.params()} for item in self._where]

    def subscriptions_of(self, link: int) -> list[dict[str, Any]]:
        """The active subscriptions of one connection (the ``link`` of a :class:`StateChange`)."""
        return [{"channel": item.channel, **item.params()} for item in self._links[link].items]

    def stats(self) -> dict[str, Any]:
        """Counters: pushes received, duplicates dropped, pushes dropped by the buffer
        policy (per channel), unreadable frames, reconnects, buffer depth and high water."""
        return {
            "received": self.received,
            "duplicates": self._deduper.dropped if self._deduper else 0,
            "dropped": dict(self._buffer.dropped),
            "unreadable": self.decoder.unreadable,
            "reconnects": sum(max(0, link.connects - 1) for link in self._links),
            "outages": len(self.outages),
            "buffered": len(self._buffer),
            "buffer_high_water": self._buffer.high_water,
        }


class _Connect:
    """``connect(...)``: await it for an open stream, or use it with ``async with``."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def __await__(self) -> Generator[Any, None, Stream]:
        return self._stream.open().__await__()

    async def __aenter__(self) -> Stream:
        return await self._stream.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stream.close()


def connect(api_key: str | None = None, url: str = DEFAULT_URL, **options: Any) -> _Connect:
    """Open a stream: ``async with connect(...) as stream`` or ``stream = await connect(...)``.

    Options are those of :class:`Stream`.
    """
    return _Connect(Stream(api_key, url, **options))
