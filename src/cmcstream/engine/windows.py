"""Exact rolling windows: every trade of the trailing length, none older.

Each run of trades (:class:`~cmcstream.engine.trades.TradeRun`) becomes one
*slot* of an entity's ledger: the whole second ``end`` its trades lie just
before or on (they are in ``(end - 1 s, end]``), its buy and sell counts and
volumes, its price range, and per side how many traders' newest slot it is.
A window of length ``W`` read at ``now`` holds the slots with
``end > now - W``. Read on a whole second, as the node does, that is exactly
the trades stamped in ``(now - W, now]``, to the millisecond; read between two
seconds, its oldest edge may hold up to one second more.

**Lazy.** A slot enters a window's running totals, and leaves them, when the
window is read. Folding a run costs a few appends whatever the number of
windows; an entity nobody reads costs nothing more, and one that is read costs
O(1) amortized per slot and window (each slot enters and leaves each window
once). The ledger keeps the slots of the longest window, trimmed from the front
now and then (amortized O(1)); windows still holding a trimmed slot let it go
first.

**Exact sums.** Every finite double is a whole number of ``2**-1074``. A window
keeps each volume as that integer, adds a slot's when it enters and subtracts
the same integer when it leaves, and divides once when read (correctly
rounded). So a window's volume is the correctly rounded sum of its slots'
volumes (each the left-to-right sum of its trades), with no drift however long
it rolls, and does not depend on when it was read.

**High and low**: per window, slots whose high no later slot in the window
beats (a monotonic queue; low likewise): amortized O(1). The first price is the
oldest slot's first, the last the newest's last.

**Distinct traders**, per side (all, buyers, sellers): each trader's newest
slot, and per slot how many traders' newest it is. A window's count is the sum
over its slots, kept running: when a trader trades again, the windows holding
its previous newest slot give it up. O(1) per trader and window.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence
from typing import Final

from cmcstream.engine.numeric import add_up, quotient
from cmcstream.engine.trades import TradeRun
from cmcstream.engine.units import SECOND_MS

__all__ = ["RollingWindows", "WindowTotals"]

_ONE: Final = 1 << 1074
"""1.0 in exact units: ``2**-1074``, the smallest double, is one."""


def _exact(value: float) -> int:
    """``value`` (finite) in exact units of ``2**-1074``."""
    numerator, denominator = value.as_integer_ratio()  # denominator = 2**k, k <= 1074
    return numerator << (1075 - denominator.bit_length())


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
        "vn",
        "vu",
    )

    def __init__(self) -> None:
        self.bc = 0
        self.sc = 0
        self.bvu = 0.0
        self.svu = 0.0
        self.bvn = 0.0
        self.svn = 0.0
        self.vu = 0.0  # bvu + svu, rounded once
        self.vn = 0.0
        self.ut = 0
        self.but = 0
        self.sut = 0
        self.h: float | None = None
        self.l: float | None = None
        self.open: float | None = None  # first price in the window
        self.last: float | None = None  # last price in the window


# Sides of the distinct counts.
_ALL, _BUYERS, _SELLERS = 0, 1, 2


class _Window:
    """One window's running totals over the ledger's slots ``[start, done)``."""

    __slots__ = (
        "bc",
        "bvn",
        "bvu",
        "highs",
        "length_ms",
        "lows",
        "sc",
        "start",
        "svn",
        "svu",
        "traders",
    )

    def __init__(self, length_ms: int) -> None:
        self.length_ms = length_ms
        self.start = 0  # absolute index of its oldest slot
        self.bc = 0
        self.sc = 0
        self.bvu = 0  # exact units
        self.svu = 0
        self.bvn = 0
        self.svn = 0
        self.traders = [0, 0, 0]  # per side: traders whose newest slot it holds
        # Absolute slot indices, oldest first, whose high (low) no later slot beats.
        self.highs: deque[int] = deque()
        self.lows: deque[int] = deque()


class RollingWindows:
    """Buy/sell counts, volumes, unique traders and price range over several trailing lengths.

    Runs must arrive in time order: a run older than the newest slot is filed
    with the newest slot's time.

    Args:
        lengths_ms: the windows' lengths, whole seconds.
        prices: keep the price range and first/last price (pool windows have none).

    Raises:
        ValueError: a length is not a positive whole number of seconds.
    """

    __slots__ = (
        "_base",
        "_bc",
        "_bvn",
        "_bvu",
        "_done",
        "_end",
        "_first",
        "_hi",
        "_last",
        "_last_slot",
        "_live",
        "_lo",
        "_longest_first",
        "_newest",
        "_prices",
        "_read",
        "_sc",
        "_svn",
        "_svu",
        "_traders",
        "_trim_at",
        "_windows",
    )

    def __init__(self, lengths_ms: Sequence[int], *, prices: bool = True) -> None:
        for length in lengths_ms:
            if length <= 0 or length % SECOND_MS:
                raise ValueError("a window's length must be a whole number of seconds")
        self._windows = [_Window(length) for length in lengths_ms]
        self._longest_first = sorted(self._windows, key=lambda w: -w.length_ms)
        self._prices = prices
        # The ledger, one entry per slot, columns; slot ``i`` is at ``i - _base``.
        self._base = 0
        self._end: array[int] = array("q")
        self._bc: array[int] = array("i")
        self._sc: array[int] = array("i")
        self._bvu: array[float] = array("d")
        self._svu: array[float] = array("d")
        self._bvn: array[float] = array("d")
        self._svn: array[float] = array("d")
        self._hi: array[float] = array("d")
        self._lo: array[float] = array("d")
        self._first: array[float] = array("d")
        self._last: array[float] = array("d")
        self._traders: list[array[int]] = [array("i"), array("i"), array("i")]
        self._done = 0  # slots below it are in every window's totals or out of them
        self._newest = -1  # the newest slot's end
        self._read = -1  # the latest time read
        self._trim_at = 64  # ledger length at which to look for slots to trim
        # Per side: each trader's newest slot, and how many of them are still in the ledger.
        self._last_slot: list[dict[str, int]] = [{}, {}, {}]
        self._live = [0, 0, 0]

    # -- folding ---------------------------------------------------------------------------

    def add(self, run: TradeRun) -> None:
        """File one run of trades as the newest slot."""
        end = run.end
        if end < self._newest:
            end = self._newest
        self._newest = end
        slot = self._base + len(self._end)
        self._end.append(end)
        self._bc.append(len(run.buy_usd))
        self._sc.append(len(run.sell_usd))
        self._bvu.append(add_up(run.buy_usd, 0.0))
        self._svu.append(add_up(run.sell_usd, 0.0))
        self._bvn.append(add_up(run.buy_amount, 0.0))
        self._svn.append(add_up(run.sell_amount, 0.0))
        if self._prices:
            self._hi.append(run.high)
            self._lo.append(run.low)
            self._first.append(run.prices[0])
            self._last.append(run.prices[-1])
        self._join(_ALL, run.traders, slot)
        self._join(_BUYERS, run.buyers, slot)
        self._join(_SELLERS, run.sellers, slot)
        if len(self._end) >= self._trim_at:
            self._trim()

    def _join(self, side: int, traders: set[str], slot: int) -> None:
        """Make ``slot`` the newest of ``traders``, taking them from their previous one."""
        self._traders[side].append(len(traders))
        if not traders:
            return
        newest, counts = self._last_slot[side], self._traders[side]
        base, done, joined = self._base, self._done, 0
        for trader in traders:
            old = newest.get(trader)
            newest[trader] = slot
            if old is None or old < base:
                joined += 1
                continue
            counts[old - base] -= 1
            if old < done:  # in the totals of the windows that still hold it
                for w in self._longest_first:
                    if w.start > old:
                        break  # shorter windows start later still
                    w.traders[side] -= 1
        self._live[side] += joined

    def _trim(self) -> None:
        """Drop the slots no future read can hold (older than the longest window)."""
        # A later read is at least as late as the newest trade, which is past newest - 1 s.
        cut_time = self._newest - SECOND_MS - self._longest_first[0].length_ms
        ends, base = self._end, self._base
        dead = 0
        while dead < len(ends) and ends[dead] <= cut_time:
            dead += 1
        if dead >= 64 + len(ends) // 8:
            cut = base + dead
            for w in self._windows:
                self._leave(w, cut)
            if self._done < cut:
                self._done = cut
            for side in (_ALL, _BUYERS, _SELLERS):
                counts = self._traders[side]
                live = self._live[side] = self._live[side] - sum(counts[:dead])
                del counts[:dead]
                newest = self._last_slot[side]
                if len(newest) > 2 * live + 256:
                    # Forget traders whose newest slot left the ledger once they outnumber
                    # the others: amortized O(1) per trader; memory follows the ledger.
                    self._last_slot[side] = {t: s for t, s in newest.items() if s >= cut}
            for column in (self._end, self._bc, self._sc):
                del column[:dead]
            for values in (self._bvu, self._svu, self._bvn, self._svn):
                del values[:dead]
            if self._prices:
                for values in (self._hi, self._lo, self._first, self._last):
                    del values[:dead]
            self._base = cut
        self._trim_at = len(self._end) + 64 + len(self._end) // 8

    # -- reading ---------------------------------------------------------------------------

    def _leave(self, w: _Window, stop: int) -> None:
        """Take the window's slots below ``stop`` out of its totals."""
        base, done = self._base, self._done
        i = w.start
        while i < stop and i < done:
            at = i - base
            w.bc -= self._bc[at]
            w.sc -= self._sc[at]
            w.bvu -= _exact(self._bvu[at])
            w.svu -= _exact(self._svu[at])
            w.bvn -= _exact(self._bvn[at])
            w.svn -= _exact(self._svn[at])
            for side in (_ALL, _BUYERS, _SELLERS):
                w.traders[side] -= self._traders[side][at]
            i += 1
        if stop > w.start:
            w.start = stop
            highs, lows = w.highs, w.lows
            while highs and highs[0] < stop:
                highs.popleft()
            while lows and lows[0] < stop:
                lows.popleft()

    def _enter(self, w: _Window, slot: int) -> None:
        at = slot - self._base
        w.bc += self._bc[at]
        w.sc += self._sc[at]
        w.bvu += _exact(self._bvu[at])
        w.svu += _exact(self._svu[at])
        w.bvn += _exact(self._bvn[at])
        w.svn += _exact(self._svn[at])
        for side in (_ALL, _BUYERS, _SELLERS):
            w.traders[side] += self._traders[side][at]
        if self._prices:
            base, hi, lo = self._base, self._hi, self._lo
            highs, lows = w.highs, w.lows
            high, low = hi[at], lo[at]
            while highs and hi[highs[-1] - base] <= high:
                highs.pop()
            highs.append(slot)
            while lows and lo[lows[-1] - base] >= low:
                lows.pop()
            lows.append(slot)

    def totals(self, now_ms: int) -> list[WindowTotals]:
        """Every window ending at ``now_ms`` (an earlier time than read before reads as that)."""
        if now_ms < self._read:
            now_ms = self._read
        self._read = now_ms
        ends, base, done = self._end, self._base, self._done
        count = base + len(ends)
        out: list[WindowTotals] = []
        for w in self._windows:
            edge = now_ms - w.length_ms
            first = w.start
            while first < count and ends[first - base] <= edge:
                first += 1
            self._leave(w, first)
            for slot in range(max(done, first), count):
                self._enter(w, slot)
            out.append(self._read_window(w, count))
        self._done = count
        return out

    def _read_window(self, w: _Window, count: int) -> WindowTotals:
        t = WindowTotals()
        t.bc, t.sc = w.bc, w.sc
        t.bvu, t.svu = quotient(w.bvu, _ONE), quotient(w.svu, _ONE)
        t.bvn, t.svn = quotient(w.bvn, _ONE), quotient(w.svn, _ONE)
        t.vu, t.vn = quotient(w.bvu + w.svu, _ONE), quotient(w.bvn + w.svn, _ONE)
        t.ut, t.but, t.sut = w.traders
        if self._prices and w.start < count:
            base = self._base
            t.h = self._hi[w.highs[0] - base]
            t.l = self._lo[w.lows[0] - base]
            t.open = self._first[w.start - base]
            t.last = self._last[count - 1 - base]
        return t
