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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from websockets.protocol import Protocol, State

__all__ = ["FlushScheduler", "Outbox", "WriterPolicy"]

_OPEN: Final = State.OPEN


@dataclass(frozen=True, slots=True)
class WriterPolicy:
    """Slow-consumer limits.

    Attributes:
        soft_limit_bytes: transport buffer size above which a reader is slow.
        hard_limit_bytes: queue + buffer size at which a slow reader is closed.
        slow_timeout_s: how long a reader may stay slow before it is closed.
    """

    soft_limit_bytes: int = 256 * 1024
    hard_limit_bytes: int = 4 * 1024 * 1024
    slow_timeout_s: float = 30.0


class Outbox:
    """The outbound queue of one connection.

    Args:
        transport: the connection's transport, written to directly.
        protocol: the websockets protocol state, checked so nothing is written
            after a close frame.
        scheduler: flushes every outbox that has something queued.
        policy: the slow-consumer limits.
        on_overflow: called once when the connection must be closed with 1011.
    """

    __slots__ = (
        "_latest",
        "_on_overflow",
        "_pending",
        "_pending_bytes",
        "_pending_data",
        "_policy",
        "_protocol",
        "_scheduler",
        "_transport",
        "data_dropped",
        "data_sent",
        "dirty",
        "failed",
        "last_push",
        "slow_since",
    )

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: Protocol,
        scheduler: FlushScheduler,
        policy: WriterPolicy,
        on_overflow: Callable[[Outbox], None],
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._scheduler = scheduler
        self._policy = policy
        self._on_overflow = on_overflow
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_data = 0
        self._latest: dict[str, bytes] = {}
        self.dirty = False
        self.failed = False
        self.slow_since: float | None = None
        self.last_push = 0.0
        self.data_sent = 0
        self.data_dropped = 0

    @property
    def queued_bytes(self) -> int:
        return self._pending_bytes + sum(map(len, self._latest.values()))

    def send(self, frame: bytes) -> None:
        """Queue a reply frame (welcome, ack, pong, error); never collapsed."""
        if self.failed:
            return
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        self._mark()

    def push(self, topic: str, frame: bytes, collapsible: bool) -> None:
        """Queue a data frame of ``topic``."""
        if self.failed:
            return
        if collapsible and self.slow_since is not None:
            if topic in self._latest:
                self.data_dropped += 1
            self._latest[topic] = frame
        else:
            self._pending.append(frame)
            self._pending_bytes += len(frame)
            self._pending_data += 1
        self._mark()

    def _mark(self) -> None:
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
            return False
        transport = self._transport
        if self._protocol.state is not _OPEN or transport.is_closing():
            self._clear()
            return False
        buffered = transport.get_write_buffer_size()
        if buffered > self._policy.soft_limit_bytes:
            if self.slow_since is None:
                self.slow_since = now
            if (
                buffered + self.queued_bytes > self._policy.hard_limit_bytes
                or now - self.slow_since > self._policy.slow_timeout_s
            ):
                self._fail()
                return False
            return bool(self._pending or self._latest)
        self.slow_since = None
        pending = self._pending
        data_count = self._pending_data
        if self._latest:
            pending.extend(self._latest.values())
            data_count += len(self._latest)
            self._latest.clear()
        if not pending:
            return False
        transport.write(b"".join(pending) if len(pending) > 1 else pending[0])
        if data_count:
            self.data_sent += data_count
            self.last_push = now
        self._pending = []
        self._pending_bytes = 0
        self._pending_data = 0
        return False

    def _fail(self) -> None:
        self.failed = True
        self._clear()
        self._on_overflow(self)

    def _clear(self) -> None:
        self._pending = []
        self._pending_bytes = 0
        self._pending_data = 0
        self._latest.clear()


class FlushScheduler:
    """Flushes every outbox with queued frames once per event-loop pass.

    Fan-out only appends; the first append to an idle outbox schedules one
    flush of all of them, so a tick's pushes to a connection leave together.
    Outboxes held back by a slow reader are retried every ``retry_s``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, retry_s: float = 0.05) -> None:
        self._loop = loop
        self._retry_s = retry_s
        self._dirty: list[Outbox] = []
        self._blocked: set[Outbox] = set()
        self._scheduled = False
        self._retry: asyncio.TimerHandle | None = None

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        now = self._loop.time()
        blocked = self._blocked
        for outbox in dirty:
            if outbox.flush(now):
                blocked.add(outbox)
            else:
                blocked.discard(outbox)
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
        """Drop a closed connection's outbox from the retry set."""
        self._blocked.discard(outbox)
