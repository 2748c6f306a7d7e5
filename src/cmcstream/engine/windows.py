"""Rolling windows folded a second at a time: bucketed counters and exact sliding distinct counts.

A window of length ``W`` keeps ``B`` buckets of ``W / B`` in a ring. A run of
trades (:class:`~cmcstream.engine.trades.TradeRun`, one second of them) adds to
the current bucket only; a bucket is cleared when time moves past it. Reading a
window sums its ``B`` buckets: that happens at most about once a second per
watched identity, so the sums are not kept running. The window covers the
current bucket and the ``B - 1`` before it: between ``W - W/B`` and ``W``.

Distinct traders are exact. Per side (all, buyers, sellers) each window keeps,
per bucket, how many traders' newest bucket it is; the distinct count is the
sum over the live buckets, and an evicted bucket takes its traders with it by
clearing one count. Which bucket is a trader's newest follows, in every window
at once, from one number: the time the windows had reached when it last traded
(all windows of one :class:`RollingWindows` move together, so their head
buckets are that time's). A trader's first trade in a window's bucket moves it
from its previous bucket to this one; a repeat in the same bucket costs a
comparison. So a trade costs one lookup per side for all windows: O(1).

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


# Sides of the distinct counts: index into ``_Window.distinct`` and ``RollingWindows._last``.
_ALL, _BUYERS, _SELLERS = 0, 1, 2


class _Window:
    """One window: buy/sell counts, volumes, unique traders and price range per bucket."""

    __slots__ = (
        "bc",
        "bucket_ms",
        "bvn",
        "bvu",
        "distinct",
        "first",
        "head",
        "hi",
        "last",
        "length_ms",
        "lo",
        "sc",
        "size",
        "svn",
        "svu",
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
        # Per side, per bucket: traders whose newest bucket it is (kept by RollingWindows).
        self.distinct = [[0] * buckets for _ in range(3)]
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
        for counts in self.distinct:
            counts[:] = [0] * size

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
        for counts in self.distinct:
            counts[slot] = 0

    def add(self, run: TradeRun) -> None:
        """Count a run's trades (not its traders: see :meth:`RollingWindows.add`).

        A run older than the newest bucket counts in the newest bucket.
        """
        slot = self.advance(run.ts)
        if run.buy_usd:
            self.bc[slot] += len(run.buy_usd)
            self.bvu[slot] = add_up(run.buy_usd, self.bvu[slot])
            self.bvn[slot] = add_up(run.buy_amount, self.bvn[slot])
        if run.sell_usd:
            self.sc[slot] += len(run.sell_usd)
            self.svu[slot] = add_up(run.sell_usd, self.svu[slot])
            self.svn[slot] = add_up(run.sell_amount, self.svn[slot])
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
        out.ut, out.but, out.sut = (sum(counts) for counts in self.distinct)
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

    __slots__ = ("_finest_first", "_last", "_longest", "_nested", "_reached", "_windows")

    def __init__(self, lengths_ms: Sequence[int], buckets: int = 60) -> None:
        self._windows = [_Window(length, buckets) for length in lengths_ms]
        self._longest = max(self._windows, key=lambda w: w.length_ms)
        self._finest_first = sorted(self._windows, key=lambda w: w.bucket_ms)
        # When every bucket length divides the next, two times in one bucket are in one
        # bucket of every coarser window too, so a trader's walk can stop there.
        self._nested = all(
            coarse.bucket_ms % fine.bucket_ms == 0
            for fine, coarse in zip(self._finest_first, self._finest_first[1:], strict=False)
        )
        # The latest time any window was moved to: every window's head bucket holds it.
        self._reached = -1
        # Per side: each trader's ``_reached`` when it last traded, which names its
        # newest bucket in every window.
        self._last: list[dict[str, int]] = [{}, {}, {}]

    def add(self, run: TradeRun) -> None:
        """Count one second of trades in every window."""
        for window in self._windows:
            window.add(run)
        if run.ts > self._reached:
            self._reached = run.ts
        self._join(_ALL, run.traders)
        if run.buy_usd:
            self._join(_BUYERS, run.buyers)
        if run.sell_usd:
            self._join(_SELLERS, run.sellers)
        for side in (_ALL, _BUYERS, _SELLERS):
            self._prune(side)

    def _join(self, side: int, traders: set[str]) -> None:
        """Count ``traders`` in the head bucket of every window, once per bucket."""
        last, reached = self._last[side], self._reached
        windows, nested = self._finest_first, self._nested
        for trader in traders:
            old = last.get(trader)
            last[trader] = reached
            if old is None:
                for w in windows:
                    w.distinct[side][w.head % w.size] += 1
            elif old != reached:
                for w in windows:
                    head, previous = w.head, old // w.bucket_ms
                    if previous == head:  # already counted in this bucket
                        if nested:
                            break
                        continue
                    counts, size = w.distinct[side], w.size
                    if previous > head - size:  # it moves out of a live bucket
                        counts[previous % size] -= 1
                    counts[head % size] += 1

    def _prune(self, side: int) -> None:
        # Forget traders whose newest bucket left the longest window, once they outnumber
        # the ones still in it: amortized O(1) per trader, and memory follows the window.
        last, longest = self._last[side], self._longest
        if len(last) > 2 * sum(longest.distinct[side]) + 256:
            bucket_ms, oldest = longest.bucket_ms, longest.head - longest.size
            self._last[side] = {t: at for t, at in last.items() if at // bucket_ms > oldest}

    def totals(self, now_ms: int) -> list[WindowTotals]:
        """Every window ending at ``now_ms`` (not older than the last run), in the given order."""
        if now_ms > self._reached:
            self._reached = now_ms
        return [window.totals(now_ms) for window in self._windows]
