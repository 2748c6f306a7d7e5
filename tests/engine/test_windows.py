"""Rolling windows: exactly the trades of the trailing length, none older, however folded."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, strategies as st

from cmcstream.engine.numeric import add_up
from cmcstream.engine.trades import Tape, TradeRun, run_key
from cmcstream.engine.windows import RollingWindows, WindowTotals

Trade = tuple[int, bool, float, float, str, float]  # ts, buy, usd, amount, trader, price


def end_of_second(ts: int) -> int:
    """The whole second a trade lies just before or on."""
    return -(-ts // 1000) * 1000


@dataclass
class _Run:
    end: int
    trades: list[Trade] = field(default_factory=list)


class Reference:
    """Every window, trade by trade, as simply as it can be said.

    A window of length ``W`` read at ``now`` holds the trades whose second ends
    after ``now - W`` (a late trade takes the newest second's end): on a whole
    second, exactly the trades stamped in ``(now - W, now]``. Its volumes are the
    correctly rounded sums of its runs' volumes, each run's added left to right.
    """

    def __init__(self) -> None:
        self.runs: list[_Run] = []
        self.key = -1
        self.newest = -1
        self.read = -1

    def add(self, trade: Trade) -> None:
        key = run_key(trade[0])
        if key != self.key or not self.runs:
            self.key = key
            self.newest = max(self.newest, end_of_second(trade[0]))
            self.runs.append(_Run(self.newest))
        self.runs[-1].trades.append(trade)

    def totals(self, length_ms: int, now_ms: int) -> dict[str, object]:
        now_ms = max(now_ms, self.read)
        runs = [r for r in self.runs if r.end > now_ms - length_ms]
        trades = [t for r in runs for t in r.trades]
        buys = [t for t in trades if t[1]]
        sells = [t for t in trades if not t[1]]

        def run_sums(buy: bool, index: int) -> list[float]:
            return [add_up([t[index] for t in r.trades if t[1] == buy], 0.0) for r in runs]

        prices = [t[5] for t in trades]
        buyers, sellers = {t[4] for t in buys}, {t[4] for t in sells}
        return {
            "bc": len(buys),
            "sc": len(sells),
            "bvu": math.fsum(run_sums(True, 2)),
            "svu": math.fsum(run_sums(False, 2)),
            "bvn": math.fsum(run_sums(True, 3)),
            "svn": math.fsum(run_sums(False, 3)),
            "vu": math.fsum(run_sums(True, 2) + run_sums(False, 2)),
            "vn": math.fsum(run_sums(True, 3) + run_sums(False, 3)),
            "ut": len(buyers | sellers),
            "but": len(buyers),
            "sut": len(sellers),
            "h": max(prices, default=None),
            "l": min(prices, default=None),
            "open": prices[0] if prices else None,
            "last": prices[-1] if prices else None,
        }

    def flush(self, now_ms: int) -> None:
        """A read: the next trade starts a run, as the engine folds before reading."""
        self.key = -1
        self.read = max(self.read, now_ms)


# Named here rather than read off ``__slots__``, which a compiled build does not have.
TOTALS = ("bc", "but", "bvn", "bvu", "h", "l", "last", "open", "sc", "sut", "svn", "svu",
          "ut", "vn", "vu")  # fmt: skip


def as_dict(t: WindowTotals) -> dict[str, object]:
    return {name: getattr(t, name) for name in TOTALS}


class Feed:
    """Trades into :class:`RollingWindows` as the engine feeds them: a run at a time."""

    def __init__(self, windows: RollingWindows) -> None:
        self.windows = windows
        self.tape = Tape()

    def add(self, trade: Trade) -> None:
        ts, buy, usd, amount, trader, price = trade
        if self.tape.key != run_key(ts):
            self.flush()
            self.tape.key = run_key(ts)
        self.tape.trades += (buy, usd, amount, trader, price)

    def flush(self) -> None:
        run = self.tape.take()
        if run is not None:
            self.windows.add(run)

    def totals(self, now_ms: int) -> list[WindowTotals]:
        self.flush()
        return self.windows.totals(now_ms)


LENGTHS = (10_000, 60_000, 300_000)

events = st.lists(
    st.one_of(
        st.tuples(
            # Gap to the previous trade, ms: mostly within the second (runs of several
            # trades), on whole seconds, sometimes across seconds, back in time, or a
            # whole window on.
            st.one_of(
                st.integers(min_value=0, max_value=300),
                st.sampled_from([0, 250, 750, 1_000, 2_000]),
                st.integers(min_value=-1_500, max_value=12_000),
                st.sampled_from([1_000, 10_000, 60_000]),
            ),
            st.booleans(),
            st.one_of(st.floats(min_value=0, max_value=1e6), st.sampled_from([1e16, 1.0])),
            st.floats(min_value=0, max_value=1e6),
            st.sampled_from([f"w{i}" for i in range(6)]),
            st.floats(min_value=1e-6, max_value=1e6),
        ),
        # A read this long after the last trade; mostly on a whole second, as the node reads.
        st.one_of(st.integers(min_value=0, max_value=20_000), st.sampled_from([0, 1, 999])),
    ),
    max_size=250,
)


@pytest.mark.parametrize("lengths", [LENGTHS, (20_000, 30_000, 50_000), (2_000, 1_000)])
@settings(max_examples=300)
@given(script=events, tail=st.integers(min_value=0, max_value=400_000), whole=st.booleans())
def test_windows_hold_exactly_the_trades_of_their_length(
    lengths: tuple[int, ...],
    script: list[Trade | int],
    tail: int,
    whole: bool,
) -> None:
    windows = Feed(RollingWindows(lengths))
    reference = Reference()
    ts = now = 1_000_000
    for step in script:
        if isinstance(step, int):
            now = max(now, ts + step)
            if whole:
                now = end_of_second(now)
            got = windows.totals(now)
            assert [as_dict(t) for t in got] == [reference.totals(w, now) for w in lengths]
            reference.flush(now)
            continue
        gap, *rest = step
        ts = max(ts + gap, 0)
        trade: Trade = (ts, *rest)  # type: ignore[assignment]
        windows.add(trade)
        reference.add(trade)
    now = max(now, ts) + tail
    got = windows.totals(now)
    assert [as_dict(t) for t in got] == [reference.totals(w, now) for w in lengths]
    for t in got:
        assert t.ut <= t.but + t.sut


in_order = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 400), st.sampled_from([0, 250, 1_000]), st.integers(0, 70_000)),
        st.booleans(),
        st.floats(min_value=0.01, max_value=1e6),
        st.sampled_from([f"w{i}" for i in range(8)]),
        st.booleans(),  # read the windows after this trade
    ),
    max_size=200,
)


@settings(max_examples=200)
@given(script=in_order)
def test_on_a_whole_second_a_window_is_exact_to_the_millisecond(
    script: list[tuple[int, bool, float, str, bool]],
) -> None:
    # Stated per trade, with nothing about runs: (now - W, now] to the millisecond.
    lengths = (1_000, 60_000, 3_600_000)
    windows = Feed(RollingWindows(lengths))
    seen: list[Trade] = []
    ts = 5_000_000
    for gap, buy, usd, trader, read in script:
        ts += gap
        trade = (ts, buy, usd, usd / 2, trader, usd / 3)
        windows.add(trade)
        seen.append(trade)
        if not read:
            continue
        now = end_of_second(ts)
        for length, got in zip(lengths, windows.totals(now), strict=True):
            inside = [t for t in seen if now - length < t[0] <= now]
            assert (got.bc, got.sc) == (
                sum(1 for t in inside if t[1]),
                sum(1 for t in inside if not t[1]),
            )
            assert (got.ut, got.but, got.sut) == (
                len({t[4] for t in inside}),
                len({t[4] for t in inside if t[1]}),
                len({t[4] for t in inside if not t[1]}),
            )
            assert got.h == max((t[5] for t in inside), default=None)
            assert got.l == min((t[5] for t in inside), default=None)
            assert got.open == (inside[0][5] if inside else None)
            assert got.last == (inside[-1][5] if inside else None)
            assert math.isclose(got.vu, math.fsum(t[2] for t in inside), rel_tol=1e-12)
            assert math.isclose(got.bvn, math.fsum(t[3] for t in inside if t[1]), rel_tol=1e-12)


def run_of(second: int, *trades: tuple[bool, float, str, float]) -> TradeRun:
    """A run of trades stamped on the whole second ``second`` (so ending there)."""
    tape = Tape()
    tape.key = run_key(second * 1000)
    for buy, usd, trader, price in trades:
        tape.trades += (buy, usd, 1.0, trader, price)
    run = tape.take()
    assert run is not None
    return run


def test_an_hour_holds_its_oldest_trades_to_the_millisecond() -> None:
    # Split into 60 buckets, the hour used to lose up to a minute of its oldest trades.
    windows = Feed(RollingWindows([3_600_000]))
    windows.add((10_000_500, True, 7.0, 1.0, "a", 2.0))
    windows.add((10_030_000, False, 5.0, 1.0, "b", 3.0))
    [hour] = windows.totals(13_600_000)  # (10_000_000, 13_600_000]: both
    assert (hour.bc, hour.sc, hour.ut, hour.vu, hour.h) == (1, 1, 2, 12.0, 3.0)
    [hour] = windows.totals(13_601_000)  # the first left at 13_600_500; read on the second
    assert (hour.bc, hour.sc, hour.ut, hour.vu, hour.h, hour.open) == (0, 1, 1, 5.0, 3.0, 3.0)
    [hour] = windows.totals(13_630_000)  # 10_030_000 is not in (10_030_000, 13_630_000]
    assert (hour.bc, hour.sc, hour.ut, hour.vu, hour.h) == (0, 0, 0, 0.0, None)


def test_a_read_between_seconds_holds_at_most_one_second_more() -> None:
    windows = RollingWindows([10_000])
    windows.add(run_of(1, (True, 5.0, "a", 2.0)))
    windows.add(run_of(9, (False, 3.0, "b", 4.0)))
    [totals] = windows.totals(10_999)  # the trade at 1 000 is 10 999 ms old: still held
    assert (totals.bc, totals.sc, totals.ut) == (1, 1, 2)
    [totals] = windows.totals(11_000)
    assert (totals.bc, totals.sc, totals.ut, totals.bvu) == (0, 1, 1, 0.0)
    assert (totals.open, totals.last) == (4.0, 4.0)
    [totals] = windows.totals(1_000_000)
    assert (totals.bc, totals.sc, totals.ut, totals.h) == (0, 0, 0, None)


def test_a_returning_trader_moves_to_its_newest_second() -> None:
    windows = RollingWindows([10_000])
    windows.add(run_of(1, (True, 1.0, "a", 1.0)))
    windows.add(run_of(5, (True, 1.0, "a", 1.0), (False, 1.0, "b", 1.0)))
    [totals] = windows.totals(11_000)  # second 1 left; "a" is still in second 5
    assert (totals.ut, totals.but, totals.sut) == (2, 1, 1)
    [totals] = windows.totals(15_000)
    assert (totals.ut, totals.but, totals.sut) == (0, 0, 0)


def test_traders_who_left_every_window_are_forgotten() -> None:
    windows = RollingWindows([10_000])
    windows.add(run_of(0, *((True, 1.0, f"w{i}", 1.0) for i in range(1000))))
    for second in range(20, 400):
        windows.add(run_of(second, (False, 1.0, "late", 1.0)))
    [totals] = windows.totals(400_000)
    assert (totals.ut, totals.but, totals.sut) == (1, 0, 1)
    # The thousand early traders no longer take memory (internal, but the point of pruning).
    assert all(len(side) < 300 for side in windows._last_slot)


def test_the_ledger_keeps_only_the_longest_window() -> None:
    windows = RollingWindows([5_000, 10_000])
    for second in range(1, 5_001):
        windows.add(run_of(second, (second % 2 == 0, 1.0, f"w{second % 50}", float(second))))
        if second % 7 == 0:
            windows.totals(second * 1000)
    five, ten = windows.totals(5_000_000)
    assert (five.bc + five.sc, ten.bc + ten.sc, ten.ut, ten.h, ten.l) == (5, 10, 10, 5000.0, 4991.0)
    assert len(windows._end) < 200  # internal: trimmed as it rolls


def test_a_run_adds_up_as_its_trades_one_by_one() -> None:
    # 1e16 + 1 rounds back to 1e16: one at a time, two ones add nothing; summed
    # first (or with compensation) they would add 2.
    windows = RollingWindows([10_000])
    windows.add(run_of(3, (True, 1e16, "a", 1.0), (True, 1.0, "a", 1.0), (True, 1.0, "a", 1.0)))
    [totals] = windows.totals(3_000)
    assert totals.bvu == 1e16


def test_sums_do_not_drift_as_seconds_come_and_go() -> None:
    # A float running sum would keep the rounding of everything that passed through.
    windows = RollingWindows([2_000])
    values = [1e16, 0.1, 1.0, 1e-3, 3.0, 0.1, 0.2]
    for second, value in enumerate(values, start=1):
        windows.add(run_of(second, (True, value, "a", 1.0)))
        [totals] = windows.totals(second * 1000)
        assert totals.bvu == math.fsum(values[max(second - 2, 0) : second])
    [totals] = windows.totals(len(values) * 1000 + 1000)
    assert totals.bvu == 0.2


def test_a_trader_back_one_window_later_is_counted_once() -> None:
    windows = RollingWindows([10_000])
    windows.add(run_of(2, (True, 1.0, "a", 1.0), (True, 1.0, "b", 1.0)))
    windows.add(run_of(7, (False, 1.0, "c", 1.0)))
    windows.add(run_of(12, (True, 1.0, "a", 1.0)))
    [totals] = windows.totals(12_000)
    assert (totals.ut, totals.but, totals.sut, totals.bc) == (2, 1, 1, 1)


def test_pool_windows_keep_no_prices() -> None:
    windows = RollingWindows([10_000], prices=False)
    windows.add(run_of(2, (True, 4.0, "a", 9.0)))
    [totals] = windows.totals(2_000)
    assert (totals.bvu, totals.ut, totals.h, totals.open) == (4.0, 1, None, None)


def test_window_lengths_are_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        RollingWindows([60_000, 1500])
    with pytest.raises(ValueError, match="whole number of seconds"):
        RollingWindows([0])
