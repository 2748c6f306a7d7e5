"""Each connection's outbound queue, and what happens when its reader is slow.

Frames are queued, never written one by one: a connection's queued frames leave
in one ``write()`` per loop pass (the kernel write, 5–10 µs on loopback, is the
cost that matters; research/perf.md). When a reader falls behind, its
transport buffer grows past ``soft_limit_bytes``; from then on the connection
is *slow*:

- nothing more is written to it until its buffer drains;
- latest-value pushes (``market@crypto_latest_price``) are collapsed to the
  newest frame per topic, so its queue stays bounded by its subscriptions;
- other frames (acks, errors, event pushes) stay queued in order;
- if its queue plus buffer pass ``hard_limit_bytes``, or it stays slow for
  ``slow_timeout_s``, it is closed with 1011 (send failure).

No other connection ever waits for a slow one: fan-out only appends to queues.

Under per-message billing an outbox has a :class:`PushMeter`: each push is
charged as it is queued and only if the key can pay for it, and a push that is
never written (collapsed away, or still queued when the connection ends) is
refunded, so a key is charged exactly for what it was sent.
"""

from __future__ import annotations

import asyncio
import functools
import typing
from collections.abc import Callable
from typing import Final

from websockets.protocol import Protocol, State

from cmcstream.config import WriterPolicy

__all__ = ["FlushScheduler", "Outbox", "PushMeter"]

_OPEN: Final = State.OPEN


class PushMeter(typing.Protocol):
    """Charges pushes to a key as they are queued."""

    def take(self) -> bool:
        """Charge one push; False (nothing charged) when the key cannot pay for it."""
        ...

    def refund(self, pushes: int) -> None:
        """Return the charge of pushes that were never written."""
        ...


class Outbox:
    """The outbound queue of one connection.

    Fan-out reaches an outbox through a *sink* per topic (:meth:`sink`): for a
    reader keeping up that is the bound ``append`` of the queue itself, so a
    push costs one call per subscriber and nothing else; counting and byte
    accounting wait for the flush. While the reader is slow, the sinks of
    latest-value topics collapse instead (``on_slow`` tells the hub to swap them).

    Args:
        transport: the connection's transport, written to directly.
        protocol: the websockets protocol state, checked so nothing is written
            after a close frame.
        scheduler: flushes every outbox that has something queued.
        policy: the slow-consumer limits.
        on_overflow: called once when the connection must be closed with 1011.
        on_slow: called when the reader becomes slow and when it catches up.
        meter: charges each push (per-message billing); ``None`` when pushes are free.
    """

    __slots__ = (
        "_latest",
        "_meter",
        "_on_overflow",
        "_on_slow",
        "_policy",
        "_protocol",
        "_replies",
        "_scheduler",
        "_transport",
        "append",
        "bytes_sent",
        "data_dropped",
        "data_sent",
        "dirty",
        "failed",
        "last_push",
        "pending",
        "slow_since",
    )

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: Protocol,
        scheduler: FlushScheduler,
        policy: WriterPolicy,
        on_overflow: Callable[[Outbox], None],
        on_slow: Callable[[Outbox], None] | None = None,
        meter: PushMeter | None = None,
    ) -> None:
        self._meter = meter
        self._transport = transport
        self._protocol = protocol
        self._scheduler = scheduler
        self._policy = policy
        self._on_overflow = on_overflow
        self._on_slow = on_slow
        # The queue is emptied in place, never replaced: sinks hold its append.
        self.pending: list[bytes] = []
        self.append = self.pending.append
        self._replies = 0  # frames in the queue that are not pushes
        self._latest: dict[str, bytes] = {}
        self.dirty = False
        self.failed = False
        self.slow_since: float | None = None
        self.last_push = 0.0
        self.data_sent = 0
        self.data_dropped = 0
        self.bytes_sent = 0
        scheduler.register(self)

    @property
    def queued_bytes(self) -> int:
        return sum(map(len, self.pending)) + sum(map(len, self._latest.values()))

    @property
    def has_work(self) -> bool:
        return bool(self.pending or self._latest)

    def sink(self, topic: str, collapsible: bool) -> Callable[[bytes], None]:
        """Where pushes of ``topic`` go: the queue, or (slow reader) the newest-per-topic map."""
        sink: Callable[[bytes], None]
        if collapsible and self.slow_since is not None:
            sink = functools.partial(self._collapse, topic)
        else:
            sink = self.append
        if self._meter is None:
            return sink
        return functools.partial(self._metered, sink)

    def _metered(self, sink: Callable[[bytes], None], frame: bytes) -> None:
        assert self._meter is not None
        if self._meter.take():
            sink(frame)

    def _collapse(self, topic: str, frame: bytes) -> None:
        if topic in self._latest:
            self.data_dropped += 1
            if self._meter is not None:
                self._meter.refund(1)
        self._latest[topic] = frame

    def send(self, frame: bytes) -> None:
        """Queue a reply frame (welcome, ack, pong, error); never collapsed."""
        if self.failed:
            return
        self.pending.append(frame)
        self._replies += 1
        if not self.dirty:
            self.dirty = True
            self._scheduler.mark(self)

    def flush(self, now: float) -> bool:
        """Write everything queued in one write, unless the reader is slow.

        Returns:
            True when frames stay queued because the reader is slow.
        """
        self.dirty = False
        if self.failed:
            self._clear()
            return False
        transport = self._transport
        if self._protocol.state is not _OPEN or transport.is_closing():
            self._clear()
            return False
        buffered = transport.get_write_buffer_size()
        if buffered > self._policy.soft_limit_bytes:
            if self.slow_since is None:
                self.slow_since = now
                if self._on_slow is not None:
                    self._on_slow(self)
            if (
                buffered + self.queued_bytes > self._policy.hard_limit_bytes
                or now - self.slow_since > self._policy.slow_timeout_s
            ):
                self._fail()
                return False
            return self.has_work
        if self.slow_since is not None:
            self.slow_since = None
            if self._on_slow is not None:
                self._on_slow(self)
        pending = self.pending
        data_count = len(pending) - self._replies
        if self._latest:
            pending.extend(self._latest.values())
            data_count += len(self._latest)
            self._latest.clear()
        if not pending:
            return False
        data = b"".join(pending) if len(pending) > 1 else pending[0]
        transport.write(data)
        self.bytes_sent += len(data)
        pending.clear()
        self._replies = 0
        if data_count:
            self.data_sent += data_count
            self.last_push = now
        return False

    def _fail(self) -> None:
        self.failed = True
        self._clear()
        self._on_overflow(self)

    def discard(self) -> None:
        """Drop whatever is still queued and let go of the connection (it is gone).

        The callbacks are the connection's bound methods: kept, they would hold
        it, its socket and its session in a cycle only the collector frees.
        """
        self._clear()
        self._on_overflow = _ignore
        self._on_slow = None

    def _clear(self) -> None:
        if self._meter is not None:
            unsent = len(self.pending) - self._replies + len(self._latest)
            if unsent:
                self._meter.refund(unsent)
        self.pending.clear()
        self._replies = 0
        self._latest.clear()


def _ignore(outbox: Outbox) -> None:
    return None


class FlushScheduler:
    """Flushes every outbox with queued frames once per event-loop pass.

    Replies mark their outbox; fan-out marks nothing per subscriber and instead
    tells the scheduler once per topic (:meth:`fanout`), which then flushes
    every registered outbox that has frames queued. Either way the first
    mark schedules one flush for the loop pass, so a tick's pushes to a
    connection leave together. Outboxes held back by a slow reader are
    retried every ``retry_s``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, retry_s: float = 0.05) -> None:
        self._loop = loop
        self._retry_s = retry_s
        self._outboxes: dict[Outbox, None] = {}
        self._dirty: list[Outbox] = []
        self._blocked: set[Outbox] = set()
        self._scheduled = False
        self._fanout = False
        self._retry: asyncio.TimerHandle | None = None
        # Told after each pass that wrote fan-out pushes (the push latency's clock).
        self.after_fanout: Callable[[], None] | None = None

    def register(self, outbox: Outbox) -> None:
        self._outboxes[outbox] = None

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def fanout(self) -> None:
        """Pushes were queued on some outboxes; flush all that have any."""
        if not self._fanout:
            self._fanout = True
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Flush now (also called by publishers at the end of a tick, to save a loop pass)."""
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        now = self._loop.time()
        blocked = self._blocked
        fanout = self._fanout
        if fanout:
            self._fanout = False
            for outbox in dirty:
                outbox.dirty = False
            dirty = [outbox for outbox in self._outboxes if outbox.has_work]
        for outbox in dirty:
            if outbox.flush(now):
                blocked.add(outbox)
            else:
                blocked.discard(outbox)
        if fanout and self.after_fanout is not None:
            self.after_fanout()
        if blocked and self._retry is None:
            self._retry = self._loop.call_later(self._retry_s, self._retry_blocked)

    def _retry_blocked(self) -> None:
        self._retry = None
        for outbox in list(self._blocked):
            if not outbox.dirty:
                outbox.dirty = True
                self._dirty.append(outbox)
        self._blocked.clear()
        self.flush()

    def forget(self, outbox: Outbox) -> None:
        """Drop a closed connection's outbox."""
        self._outboxes.pop(outbox, None)
        self._blocked.discard(outbox)
