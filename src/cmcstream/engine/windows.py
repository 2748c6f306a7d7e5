"""Rolling windows with O(1) work per event: bucketed counters and exact sliding distinct counts.

A :class:`RollingWindow` of length ``W`` keeps ``B`` buckets of ``W / B`` in a
ring, plus running totals. An event adds to the current bucket and to the
totals; when time moves past a bucket, its counts are subtracted before it is
reused. Reading a window is reading its totals. The window therefore covers the
current bucket and the ``B - 1`` before it: between ``W - W/B`` and ``W``.

Distinct traders are exact: each bucket keeps the set of traders seen in it,
and the window keeps, per trader, how many live buckets contain it; the number
of distinct traders is the number of keys. Each (trader, bucket) pair is added
once and removed once, so the cost stays O(1) amortized per event.
"""

from __future__ import annotations

__all__ = ["RollingWindow", "WindowTotals"]


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


class _Distinct:
    """Distinct keys over the live buckets of a ring."""

    __slots__ = ("buckets", "refs")

    def __init__(self, size: int) -> None:
        self.buckets: list[set[str] | None] = [None] * size
        self.refs: dict[str, int] = {}

    def add(self, slot: int, key: str) -> None:
        bucket = self.buckets[slot]
        if bucket is None:
            bucket = self.buckets[slot] = set()
        elif key in bucket:
            return
        bucket.add(key)
        refs = self.refs
        refs[key] = refs.get(key, 0) + 1

    def evict(self, slot: int) -> None:
        bucket = self.buckets[slot]
        if not bucket:
            return
        refs = self.refs
        for key in bucket:
            left = refs[key] - 1
            if left:
                refs[key] = left
            else:
                del refs[key]
        self.buckets[slot] = None

    def clear(self) -> None:
        self.buckets = [None] * len(self.buckets)
        self.refs.clear()


class RollingWindow:
    """Buy/sell counts, volumes, unique traders and price range over the last ``length_ms``.

    Args:
        length_ms: the window length.
        buckets: how many buckets it is split into (its time resolution).
    """

    __slots__ = (
        "_bc",
        "_buyers",
        "_bvn",
        "_bvu",
        "_first",
        "_head",
        "_hi",
        "_last",
        "_lo",
        "_sc",
        "_sellers",
        "_svn",
        "_svu",
        "_traders",
        "bucket_ms",
        "length_ms",
        "size",
        "t_bc",
        "t_bvn",
        "t_bvu",
        "t_sc",
        "t_svn",
        "t_svu",
    )

    def __init__(self, length_ms: int, buckets: int = 60) -> None:
        if length_ms % buckets:
            raise ValueError("the window length must be a whole number of buckets")
        self.length_ms = length_ms
        self.size = buckets
        self.bucket_ms = length_ms // buckets
        self._head = -1  # bucket index (ts // bucket_ms) of the newest bucket
        self._bc = [0] * buckets
        self._sc = [0] * buckets
        self._bvu = [0.0] * buckets
        self._svu = [0.0] * buckets
        self._bvn = [0.0] * buckets
        self._svn = [0.0] * buckets
        self._hi: list[float | None] = [None] * buckets
        self._lo: list[float | None] = [None] * buckets
        self._first: list[float | None] = [None] * buckets
        self._last: list[float | None] = [None] * buckets
        self._traders = _Distinct(buckets)
        self._buyers = _Distinct(buckets)
        self._sellers = _Distinct(buckets)
        self.t_bc = 0
        self.t_sc = 0
        self.t_bvu = 0.0
        self.t_svu = 0.0
        self.t_bvn = 0.0
        self.t_svn = 0.0

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
        self.t_bc -= self._bc[slot]
        self.t_sc -= self._sc[slot]
        self.t_bvu -= self._bvu[slot]
        self.t_svu -= self._svu[slot]
        self.t_bvn -= self._bvn[slot]
        self.t_svn -= self._svn[slot]
        self._bc[slot] = self._sc[slot] = 0
        self._bvu[slot] = self._svu[slot] = self._bvn[slot] = self._svn[slot] = 0.0
        self._hi[slot] = self._lo[slot] = self._first[slot] = self._last[slot] = None
        self._traders.evict(slot)
        self._buyers.evict(slot)
        self._sellers.evict(slot)

    def _reset(self) -> None:
        size = self.size
        self._bc = [0] * size
        self._sc = [0] * size
        self._bvu = [0.0] * size
        self._svu = [0.0] * size
        self._bvn = [0.0] * size
        self._svn = [0.0] * size
        self._hi = [None] * size
        self._lo = [None] * size
        self._first = [None] * size
        self._last = [None] * size
        self._traders.clear()
        self._buyers.clear()
        self._sellers.clear()
        self.t_bc = self.t_sc = 0
        self.t_bvu = self.t_svu = self.t_bvn = self.t_svn = 0.0

    def add(
        self, ts: int, buy: bool, usd: float, native: float, trader: str, price: float | None
    ) -> None:
        """Count one trade at ``ts`` (not older than the window's end)."""
        self.advance(ts)
        slot = (ts // self.bucket_ms) % self.size
        if buy:
            self._bc[slot] += 1
            self._bvu[slot] += usd
            self._bvn[slot] += native
            self.t_bc += 1
            self.t_bvu += usd
            self.t_bvn += native
            self._buyers.add(slot, trader)
        else:
            self._sc[slot] += 1
            self._svu[slot] += usd
            self._svn[slot] += native
            self.t_sc += 1
            self.t_svu += usd
            self.t_svn += native
            self._sellers.add(slot, trader)
        self._traders.add(slot, trader)
        if price is not None:
            hi = self._hi[slot]
            if hi is None or price > hi:
                self._hi[slot] = price
            lo = self._lo[slot]
            if lo is None or price < lo:
                self._lo[slot] = price
            if self._first[slot] is None:
                self._first[slot] = price
            self._last[slot] = price

    def totals(self, now_ms: int) -> WindowTotals:
        """The window ending at ``now_ms`` (which must not be older than the last trade)."""
        self.advance(now_ms)
        out = WindowTotals()
        out.bc, out.sc = self.t_bc, self.t_sc
        # Running float sums drift by rounding; a window that emptied is exactly zero.
        out.bvu = self.t_bvu if self.t_bc else 0.0
        out.svu = self.t_svu if self.t_sc else 0.0
        out.bvn = self.t_bvn if self.t_bc else 0.0
        out.svn = self.t_svn if self.t_sc else 0.0
        out.ut = len(self._traders.refs)
        out.but = len(self._buyers.refs)
        out.sut = len(self._sellers.refs)
        highs = [h for h in self._hi if h is not None]
        lows = [v for v in self._lo if v is not None]
        out.h = max(highs) if highs else None
        out.l = min(lows) if lows else None
        # Walk the live buckets oldest first for the window's first and last price.
        size, head = self.size, self._head
        for index in range(head - size + 1, head + 1):
            slot = index % size
            if self._first[slot] is not None:
                if out.open is None:
                    out.open = self._first[slot]
                out.last = self._last[slot]
        return out
