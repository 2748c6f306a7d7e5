"""Rolling windows with O(1) work per event: bucketed counters and exact sliding distinct counts.

A :class:`RollingWindow` of length ``W`` keeps ``B`` buckets of ``W / B`` in a
ring. An event adds to the current bucket only; a bucket is cleared when time
moves past it. Reading a window sums its ``B`` buckets: that happens at most
about once a second per watched identity, while events arrive far more often,
so the sums are not kept running. The window covers the current bucket and the
``B - 1`` before it: between ``W - W/B`` and ``W``.

Distinct traders are exact: each bucket maps the traders seen in it to the
sides they traded on (bit 1 buy, bit 2 sell), and the window keeps, per
trader, how many live buckets hold it (in all, as buyer, as seller); the
distinct counts are the sizes of those maps. Each (trader, bucket, side) is
added once and removed once, so the cost stays O(1) amortized per event, and a
repeat trader in the same bucket costs one dictionary lookup.
"""

from __future__ import annotations

__all__ = ["RollingWindow", "WindowTotals"]

_BUY = 1
_SELL = 2


class WindowTotals:
    """What a window holds at one moment (token or pool metrics read from this)."""

    __slots__ = (
        "bc",
        "but",
        "bvn",
        "bvu",
        "h",
        "l",
        "last",
        "open",
        "sc",
        "sut",
        "svn",
        "svu",
        "ut",
    )

    def __init__(self) -> None:
        self.bc = 0
        self.sc = 0
        self.bvu = 0.0
        self.svu = 0.0
        self.bvn = 0.0
        self.svn = 0.0
        self.ut = 0
        self.but = 0
        self.sut = 0
        self.h: float | None = None
        self.l: float | None = None
        self.open: float | None = None  # first price in the window
        self.last: float | None = None  # last price in the window


def _decrement(refs: dict[str, int], key: str) -> None:
    left = refs[key] - 1
    if left:
        refs[key] = left
    else:
        del refs[key]


class RollingWindow:
    """Buy/sell counts, volumes, unique traders and price range over the last ``length_ms``.

    Events must arrive in time order (an older one is counted in the newest bucket).

    Args:
        length_ms: the window length.
        buckets: how many buckets it is split into (its time resolution).
    """

    __slots__ = (
        "_bc",
        "_bvn",
        "_bvu",
        "_first",
        "_head",
        "_hi",
        "_last",
        "_lo",
        "_refs",
        "_refs_buy",
        "_refs_sell",
        "_sc",
        "_seen",
        "_svn",
        "_svu",
        "bucket_ms",
        "length_ms",
        "size",
    )

    def __init__(self, length_ms: int, buckets: int = 60) -> None:
        if length_ms % buckets:
            raise ValueError("the window length must be a whole number of buckets")
        self.length_ms = length_ms
        self.size = buckets
        self.bucket_ms = length_ms // buckets
        self._head = -1  # bucket index (ts // bucket_ms) of the newest bucket
        self._reset()

    def _reset(self) -> None:
        size = self.size
        self._bc = [0] * size
        self._sc = [0] * size
        self._bvu = [0.0] * size
        self._svu = [0.0] * size
        self._bvn = [0.0] * size
        self._svn = [0.0] * size
        self._hi: list[float | None] = [None] * size
        self._lo: list[float | None] = [None] * size
        self._first: list[float | None] = [None] * size
        self._last: list[float | None] = [None] * size
        self._seen: list[dict[str, int]] = [{} for _ in range(size)]
        self._refs: dict[str, int] = {}
        self._refs_buy: dict[str, int] = {}
        self._refs_sell: dict[str, int] = {}

    def advance(self, ts: int) -> None:
        """Move the window's end to ``ts``, evicting the buckets that fall out of it."""
        index = ts // self.bucket_ms
        head = self._head
        if index <= head:
            return
        if head < 0 or index - head >= self.size:
            self._reset()
        else:
            for stale in range(head + 1, index + 1):
                self._evict(stale % self.size)
        self._head = index

    def _evict(self, slot: int) -> None:
        self._bc[slot] = self._sc[slot] = 0
        self._bvu[slot] = self._svu[slot] = self._bvn[slot] = self._svn[slot] = 0.0
        self._hi[slot] = self._lo[slot] = self._first[slot] = self._last[slot] = None
        seen = self._seen[slot]
        if seen:
            refs, refs_buy, refs_sell = self._refs, self._refs_buy, self._refs_sell
            for trader, sides in seen.items():
                _decrement(refs, trader)
                if sides & _BUY:
                    _decrement(refs_buy, trader)
                if sides & _SELL:
                    _decrement(refs_sell, trader)
            self._seen[slot] = {}

    def add(
        self, ts: int, buy: bool, usd: float, native: float, trader: str, price: float | None
    ) -> None:
        """Count one trade at ``ts``."""
        index = ts // self.bucket_ms
        if index > self._head:
            self.advance(ts)
            slot = index % self.size
        else:
            slot = self._head % self.size
        seen = self._seen[slot]
        sides = seen.get(trader, 0)
        if buy:
            self._bc[slot] += 1
            self._bvu[slot] += usd
            self._bvn[slot] += native
            if not sides & _BUY:
                seen[trader] = sides | _BUY
                refs = self._refs_buy
                refs[trader] = refs.get(trader, 0) + 1
                if not sides:
                    refs = self._refs
                    refs[trader] = refs.get(trader, 0) + 1
        else:
            self._sc[slot] += 1
            self._svu[slot] += usd
            self._svn[slot] += native
            if not sides & _SELL:
                seen[trader] = sides | _SELL
                refs = self._refs_sell
                refs[trader] = refs.get(trader, 0) + 1
                if not sides:
                    refs = self._refs
                    refs[trader] = refs.get(trader, 0) + 1
        if price is not None:
            hi = self._hi[slot]
            if hi is None:
                self._hi[slot] = self._lo[slot] = self._first[slot] = price
            else:
                if price > hi:
                    self._hi[slot] = price
                lo = self._lo[slot]
                if lo is not None and price < lo:
                    self._lo[slot] = price
            self._last[slot] = price

    def totals(self, now_ms: int) -> WindowTotals:
        """The window ending at ``now_ms`` (which must not be older than the last trade)."""
        self.advance(now_ms)
        out = WindowTotals()
        out.bc, out.sc = sum(self._bc), sum(self._sc)
        out.bvu, out.svu = sum(self._bvu), sum(self._svu)
        out.bvn, out.svn = sum(self._bvn), sum(self._svn)
        out.ut = len(self._refs)
        out.but = len(self._refs_buy)
        out.sut = len(self._refs_sell)
        highs = [h for h in self._hi if h is not None]
        lows = [v for v in self._lo if v is not None]
        out.h = max(highs) if highs else None
        out.l = min(lows) if lows else None
        # Walk the live buckets oldest first for the window's first and last price.
        size, head = self.size, self._head
        for index in range(head - size + 1, head + 1):
            slot = index % size
            first = self._first[slot]
            if first is not None:
                if out.open is None:
                    out.open = first
                out.last = self._last[slot]
        return out
