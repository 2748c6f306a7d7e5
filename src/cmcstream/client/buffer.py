"""The bounded receive buffer between the connections and the consumer.

Pushes wait here until the application takes them. When the application is
slower than the stream, the buffer fills, and its overflow policy decides:

* ``wait`` (default): the connections stop reading until there is room. Nothing
  is dropped by the client; the server sees a slow reader (CoinMarketCap and
  cmcstream then collapse latest-value pushes, and in the end close 1011,
  which the client reports as an outage and recovers from).
* ``latest``: for latest-value channels (every push replaces the previous one
  of the same subscription: prices, rolling metrics, holder figures) a new
  push replaces the queued one of the same subscription, and the replaced one
  is counted in :attr:`PushBuffer.dropped`. Event channels (swaps, liquidity
  events, candles, unique traders) are never dropped: they wait.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import Any

from cmcstream.client.frames import Push
from cmcstream.protocol.channels import CHANNELS, LATEST_VALUE_CHANNELS

__all__ = ["LATEST_VALUE_CHANNELS", "Overflow", "PushBuffer"]

# Per latest-value channel, the payload fields that tell its variants apart.
_VARIANTS: dict[str, tuple[str, ...]] = {
    spec.name: spec.variant_fields for spec in CHANNELS if spec.latest_value
}


class Overflow(enum.StrEnum):
    """What a full buffer does with a new push."""

    WAIT = "wait"
    LATEST = "latest"


def _latest_key(push: Push[Any], variants: tuple[str, ...]) -> tuple[Any, ...]:
    data = push.data
    if isinstance(data, dict):
        variant = tuple(data.get(name) for name in variants)
    else:
        variant = tuple(getattr(data, name, None) for name in variants)
    return (push.channel, tuple(sorted(push.params.items())), variant)


class PushBuffer:
    """A bounded FIFO of pushes with an overflow policy and drop counters."""

    def __init__(self, capacity: int = 10_000, overflow: Overflow | str = Overflow.WAIT) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.overflow = Overflow(overflow)
        self._slots: collections.deque[list[Any]] = collections.deque()
        self._latest: dict[tuple[Any, ...], list[Any]] = {}
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._error: BaseException | None = None
        self._closed = False
        self.dropped: collections.Counter[str] = collections.Counter()
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        return len(self._slots) >= self.capacity

    def _key(self, push: Push[Any]) -> tuple[Any, ...] | None:
        """What a newer push may replace ``push`` by, under the latest policy."""
        if self.overflow is Overflow.LATEST:
            variants = _VARIANTS.get(push.channel)
            if variants is not None:
                return _latest_key(push, variants)
        return None

    async def put(self, push: Push[Any]) -> None:
        """Queue ``push``; waits for room unless the policy may replace a queued push."""
        key = self._key(push)
        while self.full and not self._closed:
            if key is not None:
                slot = self._latest.get(key)
                if slot is not None:
                    slot[0] = push
                    self.dropped[push.channel] += 1
                    return
            self._writable.clear()
            await self._writable.wait()
        if not self._closed:
            self._append(push, key)

    def put_nowait(self, push: Push[Any]) -> None:
        """Queue ``push`` when there is room (check :attr:`full` first)."""
        if not self._closed:
            self._append(push, self._key(push))

    def _append(self, push: Push[Any], key: tuple[Any, ...] | None) -> None:
        slot = [push, key]
        self._slots.append(slot)
        if key is not None:
            self._latest[key] = slot
        if len(self._slots) > self.high_water:
            self.high_water = len(self._slots)
        self._readable.set()

    def get_nowait(self) -> Push[Any] | None:
        """The oldest queued push, or ``None`` when the buffer is empty."""
        if not self._slots:
            return None
        slot = self._slots.popleft()
        key = slot[1]
        if key is not None and self._latest.get(key) is slot:
            del self._latest[key]
        if not self._slots:
            self._readable.clear()
        self._writable.set()
        push: Push[Any] = slot[0]
        return push

    async def get(self) -> Push[Any]:
        """The oldest push, waiting for one; after :meth:`close`, raises once drained.

        Raises:
            StopAsyncIteration: closed without an error, and empty.
            BaseException: the error given to :meth:`close`, once empty.
        """
        while True:
            push = self.get_nowait()
            if push is not None:
                return push
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._readable.wait()

    def close(self, error: BaseException | None = None) -> None:
        """No more pushes: consumers drain what is queued, then get ``error`` (or the end)."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._readable.set()
        self._writable.set()
