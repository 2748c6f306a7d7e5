"""Rolling windows: folding a second at a time gives bit for bit what trade by trade gives."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, strategies as st

from cmcstream.engine.trades import Tape, TradeRun
from cmcstream.engine.windows import RollingWindows, WindowTotals

Trade = tuple[int, bool, float, float, str, float]  # ts, buy, usd, amount, trader, price


@dataclass
class _Bucket:
    bc: int = 0
    sc: int = 0
    bvu: float = 0.0
    svu: float = 0.0
    bvn: float = 0.0
    svn: float = 0.0
    prices: list[float] = field(default_factory=list)
    buyers: set[str] = field(default_factory=set)
    sellers: set[str] = field(default_factory=set)


class Reference:
    """One window, trade by trade, as simply as it can be said."""

    def __init__(self, length_ms: int, buckets: int) -> None:
        self.size = buckets
        self.bucket_ms = length_ms // buckets
        self.head = -1
        self.buckets: dict[int, _Bucket] = {}

    def add(self, trade: Trade) -> None:
        ts, buy, usd, amount, trader, price = trade
        self.head = max(self.head, ts // self.bucket_ms)  # an older trade joins the newest
        b = self.buckets.setdefault(self.head, _Bucket())
        if buy:
            b.bc += 1
            b.bvu += usd
            b.bvn += amount
            b.buyers.add(trader)
        else:
            b.sc += 1
            b.svu += usd
            b.svn += amount
            b.sellers.add(trader)
        b.prices.append(price)

    def totals(self, now_ms: int) -> dict[str, object]:
        self.head = max(self.head, now_ms // self.bucket_ms)
        live = sorted(i for i in self.buckets if i > self.head - self.size)

        def ring_sum(name: str) -> float:
            # The window sums its ring slot by slot; the same order gives the same float.
            ring = [0.0] * self.size
            for i in live:
                ring[i % self.size] = getattr(self.buckets[i], name)
            return sum(ring)

        bs = [self.buckets[i] for i in live]
        prices = [p for b in bs for p in b.prices]
        buyers = set().union(*(b.buyers for b in bs))
        sellers = set().union(*(b.sellers for b in bs))
        return {
            "bc": sum(b.bc for b in bs),
            "sc": sum(b.sc for b in bs),
            "bvu": ring_sum("bvu"),
            "svu": ring_sum("svu"),
            "bvn": ring_sum("bvn"),
            "svn": ring_sum("svn"),
            "ut": len(buyers | sellers),
            "but": len(buyers),
            "sut": len(sellers),
            "h": max(prices, default=None),
            "l": min(prices, default=None),
            "open": prices[0] if prices else None,
            "last": prices[-1] if prices else None,
        }


# Named here rather than read off ``__slots__``, which a compiled build does not have.
TOTALS = ("bc", "but", "bvn", "bvu", "h", "l", "last", "open", "sc", "sut", "svn", "svu", "ut")


def as_dict(t: WindowTotals) -> dict[str, object]:
    return {name: getattr(t, name) for name in TOTALS}


class Feed:
    """Trades into :class:`RollingWindows` as the engine feeds them: a second at a time."""

    def __init__(self, windows: RollingWindows) -> None:
        self.windows = windows
        self.tape = Tape()

    def add(self, trade: Trade) -> None:
        ts, buy, usd, amount, trader, price = trade
        if self.tape.second != ts // 1000:
            self.flush()
            self.tape.second = ts // 1000
        self.tape.trades += (buy, usd, amount, trader, price)

    def flush(self) -> None:
        run = self.tape.take()
        if run is not None:
            self.windows.add(run)

    def totals(self, now_ms: int) -> list[WindowTotals]:
        self.flush()
        return self.windows.totals(now_ms)


LENGTHS = (10_000, 60_000, 300_000)
BUCKETS = 10

events = st.lists(
    st.one_of(
        st.tuples(
            # Gap to the previous trade, ms: mostly within the second (runs of several
            # trades), sometimes across buckets, back in time, or a whole window on.
            st.one_of(
                st.integers(min_value=0, max_value=300),
                st.integers(min_value=-1_500, max_value=12_000),
                st.sampled_from([1_000, 10_000, 60_000]),
            ),
            st.booleans(),
            st.one_of(st.floats(min_value=0, max_value=1e6), st.sampled_from([1e16, 1.0])),
            st.floats(min_value=0, max_value=1e6),
            st.sampled_from([f"w{i}" for i in range(6)]),
            st.floats(min_value=1e-6, max_value=1e6),
        ),
        st.integers(min_value=0, max_value=20_000),  # a read this long after the last trade
    ),
    max_size=250,
)


# Bucket lengths 1, 6 and 30 s nest (each divides the next); 2, 3 and 5 s do not.
@pytest.mark.parametrize("lengths", [LENGTHS, (20_000, 30_000, 50_000)])
@settings(max_examples=300)
@given(script=events, tail=st.integers(min_value=0, max_value=400_000))
def test_folded_by_second_equals_trade_by_trade(
    lengths: tuple[int, ...],
    script: list[tuple[int, bool, float, float, str, float] | int],
    tail: int,
) -> None:
    windows = Feed(RollingWindows(lengths, BUCKETS))
    references = [Reference(length, BUCKETS) for length in lengths]
    ts = now = 1_000_000
    for step in script:
        if isinstance(step, int):
            now = max(now, ts + step)
            got = windows.totals(now)
            assert [as_dict(t) for t in got] == [r.totals(now) for r in references]
            continue
        gap, *rest = step
        ts = max(ts + gap, 0)
        trade: Trade = (ts, *rest)  # type: ignore[assignment]
        windows.add(trade)
        for reference in references:
            reference.add(trade)
    now = max(now, ts) + tail
    got = windows.totals(now)
    assert [as_dict(t) for t in got] == [r.totals(now) for r in references]
    for t in got:
        assert t.ut <= t.but + t.sut


def run_of(second: int, *trades: tuple[bool, float, str, float]) -> TradeRun:
    tape = Tape()
    tape.second = second
    for buy, usd, trader, price in trades:
        tape.trades += (buy, usd, 1.0, trader, price)
    run = tape.take()
    assert run is not None
    return run


def test_window_rolls_off_and_resets_after_a_long_gap() -> None:
    windows = RollingWindows([10_000], buckets=10)
    windows.add(run_of(0, (True, 5.0, "a", 2.0)))
    windows.add(run_of(9, (False, 3.0, "b", 4.0)))
    [totals] = windows.totals(9_999)
    assert (totals.bc, totals.sc, totals.ut) == (1, 1, 2)
    [totals] = windows.totals(10_000)  # the bucket of t=0 left the window
    assert (totals.bc, totals.sc, totals.ut, totals.bvu) == (0, 1, 1, 0.0)
    assert (totals.open, totals.last) == (4.0, 4.0)
    [totals] = windows.totals(1_000_000)
    assert (totals.bc, totals.sc, totals.ut, totals.h) == (0, 0, 0, None)


def test_a_returning_trader_moves_to_the_newest_bucket() -> None:
    windows = RollingWindows([10_000], buckets=10)
    windows.add(run_of(1, (True, 1.0, "a", 1.0)))
    windows.add(run_of(5, (True, 1.0, "a", 1.0), (False, 1.0, "b", 1.0)))
    [totals] = windows.totals(11_000)  # second 1 left; "a" is still in second 5
    assert (totals.ut, totals.but, totals.sut) == (2, 1, 1)
    [totals] = windows.totals(15_000)
    assert (totals.ut, totals.but, totals.sut) == (0, 0, 0)


def test_buckets_that_do_not_nest_each_move_a_returning_trader() -> None:
    # Seconds 2 and 3 share a 2 s bucket but not a 3 s one: the 3 s window must still
    # move the trader to its newer bucket, which outlives the older one.
    windows = RollingWindows([20_000, 30_000], buckets=10)
    windows.add(run_of(2, (True, 1.0, "a", 1.0)))
    windows.add(run_of(3, (True, 1.0, "a", 1.0)))
    two, three = windows.totals(30_000)
    assert (two.ut, three.ut, three.but) == (0, 1, 1)


def test_traders_who_left_every_window_are_forgotten() -> None:
    windows = RollingWindows([10_000], buckets=10)
    windows.add(run_of(0, *((True, 1.0, f"w{i}", 1.0) for i in range(1000))))
    for second in range(20, 40):
        windows.add(run_of(second, (False, 1.0, "late", 1.0)))
    [totals] = windows.totals(40_000)
    assert (totals.ut, totals.but, totals.sut) == (1, 0, 1)
    # The thousand early traders no longer take memory (internal, but the point of pruning).
    assert all(len(side) < 300 for side in windows._last)


def test_a_run_adds_up_as_its_trades_one_by_one() -> None:
    # 1e16 + 1 rounds back to 1e16: one at a time, two ones add nothing; summed
    # first (or with compensation) they would add 2.
    windows = RollingWindows([10_000], buckets=10)
    windows.add(run_of(3, (True, 1e16, "a", 1.0), (True, 1.0, "a", 1.0), (True, 1.0, "a", 1.0)))
    [totals] = windows.totals(3_000)
    assert totals.bvu == 1e16


def test_a_trader_back_one_window_later_is_counted_once() -> None:
    # Its previous bucket shares a ring slot with the new one, and must not be uncounted.
    windows = RollingWindows([10_000], buckets=10)
    windows.add(run_of(2, (True, 1.0, "a", 1.0), (True, 1.0, "b", 1.0)))
    windows.add(run_of(7, (False, 1.0, "c", 1.0)))
    windows.add(run_of(12, (True, 1.0, "a", 1.0)))
    [totals] = windows.totals(12_000)
    assert (totals.ut, totals.but, totals.sut, totals.bc) == (2, 1, 1, 1)


def test_window_length_must_split_into_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole number of buckets"):
        RollingWindows([1000], buckets=7)
    with pytest.raises(ValueError, match="whole number of seconds"):
        RollingWindows([60_000, 1000], buckets=10)
