"""Per-second trade buckets of one token, from which every candle and unique-trader count is cut.

Each second of swaps (a :class:`~cmcstream.engine.trades.TradeRun`) updates one
one-second bucket (open, high, low, close, USD volume and the set of traders),
whatever the number of intervals clients watch. When an interval closes, its
candle is aggregated from the seconds it spans, so a ``1s`` and a ``30m`` kline
cost the same per swap. Intervals longer than the ring (``1h``, ``4h``, ``1d``
unique traders) keep their own trader sets.
"""

from __future__ import annotations

from cmcstream.engine.numeric import add_up
from cmcstream.engine.trades import TradeRun
from cmcstream.engine.units import SECOND_MS

__all__ = ["LongTraders", "SecondBuckets"]

RING_SECONDS = 2048  # 30 minutes (the longest kline) plus room for a late close


class SecondBuckets:
    """The last :data:`RING_SECONDS` seconds of trades of one token."""

    __slots__ = ("_c", "_h", "_head", "_l", "_o", "_sec", "_traders", "_vu", "last_price")

    def __init__(self) -> None:
        n = RING_SECONDS
        self._sec = [-1] * n  # which second each slot holds
        self._o = [0.0] * n
        self._h = [0.0] * n
        self._l = [0.0] * n
        self._c = [0.0] * n
        self._vu = [0.0] * n
        self._traders: list[set[str] | None] = [None] * n
        self._head = -1
        self.last_price: float | None = None

    def add(self, run: TradeRun) -> None:
        """Record one second of included swaps of the token (prices in USD)."""
        sec = run.ts // SECOND_MS
        slot = sec % RING_SECONDS
        prices = run.prices
        if self._sec[slot] != sec:
            self._sec[slot] = sec
            self._o[slot] = prices[0]
            self._h[slot] = run.high
            self._l[slot] = run.low
            self._vu[slot] = add_up(run.usd, 0.0)
            self._traders[slot] = run.traders.copy()
        else:
            self._h[slot] = run.highest(self._h[slot])
            self._l[slot] = run.lowest(self._l[slot])
            self._vu[slot] = add_up(run.usd, self._vu[slot])
            traders = self._traders[slot]
            assert traders is not None
            traders |= run.traders
        last = prices[-1]
        self._c[slot] = last
        if sec >= self._head:
            self._head = sec
            self.last_price = last

    def _seconds(self, start_ms: int, length_ms: int) -> list[int]:
        first = start_ms // SECOND_MS
        return [
            slot
            for sec in range(first, first + length_ms // SECOND_MS)
            if self._sec[slot := sec % RING_SECONDS] == sec
        ]

    def candle(
        self, start_ms: int, length_ms: int
    ) -> tuple[float, float, float, float, float] | None:
        """``(o, h, l, c, vu)`` of the swaps in ``[start, start + length)``, or None if none."""
        slots = self._seconds(start_ms, length_ms)
        if not slots:
            return None
        return (
            self._o[slots[0]],
            max(self._h[s] for s in slots),
            min(self._l[s] for s in slots),
            self._c[slots[-1]],
            sum(self._vu[s] for s in slots),
        )

    def close_before(self, start_ms: int) -> float | None:
        """The last price before ``start_ms`` still in the ring, for empty candles."""
        sec = start_ms // SECOND_MS - 1
        for back in range(sec, max(sec - RING_SECONDS, -1), -1):
            if self._sec[back % RING_SECONDS] == back:
                return self._c[back % RING_SECONDS]
        return None

    def unique(self, start_ms: int, length_ms: int) -> int:
        """Distinct traders in ``[start, start + length)``."""
        seen: set[str] = set()
        for slot in self._seconds(start_ms, length_ms):
            traders = self._traders[slot]
            if traders:
                seen |= traders
        return len(seen)


class LongTraders:
    """Distinct traders per interval for intervals longer than the second ring.

    Keeps the interval in progress and the one before it, so an interval can be
    read at its close even after the first swap of the next one arrived.
    """

    __slots__ = ("_sets", "length_ms")

    def __init__(self, length_ms: int) -> None:
        self.length_ms = length_ms
        self._sets: dict[int, set[str]] = {}

    def add(self, run: TradeRun) -> None:
        """Count the traders of one second of swaps."""
        ts = run.ts
        start = ts - ts % self.length_ms
        bucket = self._sets.get(start)
        if bucket is None:
            bucket = self._sets[start] = set()
            for old in [k for k in self._sets if k < start - self.length_ms]:
                del self._sets[old]
        bucket |= run.traders

    def unique(self, start_ms: int) -> int:
        return len(self._sets.get(start_ms, ()))
