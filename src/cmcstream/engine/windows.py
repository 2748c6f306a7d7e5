"""Rolling windows folded a second at a time: bucketed counters and exact sliding distinct counts.

A window of length ``W`` keeps ``B`` buckets of ``W / B`` in a ring. A run of
trades (:class:`~cmcstream.engine.trades.TradeRun`, one second of them) adds to
the current bucket only; a bucket is cleared when time moves past it. Reading a
window sums its ``B`` buckets: that happens at most about once a second per
watched identity, so the sums are not kept running. The window covers the
current bucket and the ``B - 1`` before it: between ``W - W/B`` and ``W``.

Distinct traders are exact: per side (all, buyers, sellers) the window keeps
each trader's newest bucket and, per bucket, how many traders' newest bucket it
is; the distinct count is the sum over the live buckets. A trader's first trade
in a bucket moves it from its previous bucket to this one, a repeat costs a set
difference for the whole run, and an evicted bucket takes its traders with it
by clearing one count: O(1) amortized per trade.

:class:`RollingWindows` keeps every window of one token or pool together, so a
run is transposed once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from cmcstream.engine.numeric import add_up
from cmcstream.engine.trades import TradeRun
from cmcstream.engine.units import SECOND_MS

__all__ = ["RollingWindows", "WindowTotals"]


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
    """Distinct traders of one side over a window's live buckets.

    ``last`` maps a trader to the newest bucket it traded in, and ``counts`` holds,
    per slot, how many traders' newest bucket it is: the distinct count is their
    sum, and evicting a bucket is clearing its count. A trader already in the head
    bucket costs nothing more than a set difference.
    """

    __slots__ = ("counts", "current", "head", "last", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.counts = [0] * size
        self.last: dict[str, int] = {}
        self.head = -1  # the bucket index ``current`` holds
        self.current: set[str] = set()  # traders in the head bucket

    def join(self, index: int, traders: set[str]) -> None:
        """Count ``traders`` in the head bucket, ``index``."""
        if index != self.head:
            self.head = index
            self._prune(index)
            fresh = traders
            self.current = traders.copy()
        else:
            fresh = traders - self.current
            if not fresh:
                return
            self.current |= fresh
        size, counts, last = self.size, self.counts, self.last
        oldest = index - size  # this bucket and older ones are out of the window
        for trader in fresh:
            old = last.get(trader)
            if old is not None and old > oldest:
                counts[old % size] -= 1  # it moves from its previous bucket to this one
            last[trader] = index
        counts[index % size] += len(fresh)

    def _prune(self, index: int) -> None:
        # Forget traders whose newest bucket left the window, once they outnumber the
        # ones still in it: amortized O(1) per trader, and memory follows the window.
        last = self.last
        if len(last) > 2 * sum(self.counts) + 256:
            oldest = index - self.size
            self.last = {trader: i for trader, i in last.items() if i > oldest}

    def evict(self, slot: int) -> None:
        self.counts[slot] = 0

    def distinct(self) -> int:
        return sum(self.counts)


class _Window:
    """One window: buy/sell counts, volumes, unique traders and price range per bucket."""

    __slots__ = (
        "bc",
        "bucket_ms",
        "buyers",
        "bvn",
        "bvu",
        "first",
        "head",
        "hi",
        "last",
        "length_ms",
        "lo",
        "sc",
        "sellers",
        "size",
        "svn",
        "svu",
        "traders",
    )

    def __init__(self, length_ms: int, buckets: int) -> None:
        if length_ms % buckets:
            raise ValueError("the window length must be a whole number of buckets")
        if length_ms // buckets % SECOND_MS:
            raise ValueError("a bucket must be a whole number of seconds, as a run is one")
        self.length_ms = length_ms
        self.size = buckets
        self.bucket_ms = length_ms // buckets
        self.head = -1  # bucket index (ts // bucket_ms) of the newest bucket
        self._reset()

    def _reset(self) -> None:
        size = self.size
        self.bc = [0] * size
        self.sc = [0] * size
        self.bvu = [0.0] * size
        self.svu = [0.0] * size
        self.bvn = [0.0] * size
        self.svn = [0.0] * size
        self.hi: list[float | None] = [None] * size
        self.lo: list[float | None] = [None] * size
        self.first: list[float | None] = [None] * size
        self.last: list[float | None] = [None] * size
        self.traders = _Distinct(size)
        self.buyers = _Distinct(size)
        self.sellers = _Distinct(size)

    def advance(self, ts: int) -> int:
        """Move the window's end to ``ts`` (if later), evicting what falls out; the head slot."""
        index = ts // self.bucket_ms
        head = self.head
        size = self.size
        if index > head:
            if head < 0 or index - head >= size:
                self._reset()
            else:
                for stale in range(head + 1, index + 1):
                    self._evict(stale % size)
            self.head = head = index
        return head % size

    def _evict(self, slot: int) -> None:
        self.bc[slot] = self.sc[slot] = 0
        self.bvu[slot] = self.svu[slot] = self.bvn[slot] = self.svn[slot] = 0.0
        self.hi[slot] = self.lo[slot] = self.first[slot] = self.last[slot] = None
        self.traders.evict(slot)
        self.buyers.evict(slot)
        self.sellers.evict(slot)

    def add(self, run: TradeRun) -> None:
        """Count a run; one older than the newest bucket counts in the newest bucket."""
        slot = self.advance(run.ts)
        head = self.head
        if run.buy_usd:
            self.bc[slot] += len(run.buy_usd)
            self.bvu[slot] = add_up(run.buy_usd, self.bvu[slot])
            self.bvn[slot] = add_up(run.buy_amount, self.bvn[slot])
            self.buyers.join(head, run.buyers)
        if run.sell_usd:
            self.sc[slot] += len(run.sell_usd)
            self.svu[slot] = add_up(run.sell_usd, self.svu[slot])
            self.svn[slot] = add_up(run.sell_amount, self.svn[slot])
            self.sellers.join(head, run.sellers)
        self.traders.join(head, run.traders)
        prices = run.prices
        hi = self.hi[slot]
        if hi is None:
            self.first[slot] = prices[0]
            self.hi[slot] = run.high
            self.lo[slot] = run.low
        else:
            lo = self.lo[slot]
            assert lo is not None  # set and cleared with ``hi``
            self.hi[slot] = run.highest(hi)
            self.lo[slot] = run.lowest(lo)
        self.last[slot] = prices[-1]

    def totals(self, now_ms: int) -> WindowTotals:
        self.advance(now_ms)
        out = WindowTotals()
        out.bc, out.sc = sum(self.bc), sum(self.sc)
        out.bvu, out.svu = sum(self.bvu), sum(self.svu)
        out.bvn, out.svn = sum(self.bvn), sum(self.svn)
        out.ut = self.traders.distinct()
        out.but = self.buyers.distinct()
        out.sut = self.sellers.distinct()
        highs = [h for h in self.hi if h is not None]
        lows = [v for v in self.lo if v is not None]
        out.h = max(highs) if highs else None
        out.l = min(lows) if lows else None
        # Walk the live buckets oldest first for the window's first and last price.
        size, head = self.size, self.head
        for index in range(head - size + 1, head + 1):
            slot = index % size
            first = self.first[slot]
            if first is not None:
                if out.open is None:
                    out.open = first
                out.last = self.last[slot]
        return out


class RollingWindows:
    """Buy/sell counts, volumes, unique traders and price range over several trailing lengths.

    Runs must arrive in time order (an older one is counted in the newest bucket).

    Args:
        lengths_ms: the windows' lengths.
        buckets: how many buckets each is split into (its time resolution).

    Raises:
        ValueError: a length is not a whole number of buckets of whole seconds.
    """

    __slots__ = ("_windows",)

    def __init__(self, lengths_ms: Sequence[int], buckets: int = 60) -> None:
        self._windows = [_Window(length, buckets) for length in lengths_ms]

    def add(self, run: TradeRun) -> None:
        """Count one second of trades in every window."""
        for window in self._windows:
            window.add(run)

    def totals(self, now_ms: int) -> list[WindowTotals]:
        """Every window ending at ``now_ms`` (not older than the last run), in the given order."""
        return [window.totals(now_ms) for window in self._windows]
