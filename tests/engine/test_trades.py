"""Taped trades: a second of them as columns, and the exact folds every reducer relies on."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st

from cmcstream.engine.numeric import add_up
from cmcstream.engine.trades import Tape, run_key

NAN = math.nan


def test_a_tape_becomes_columns_in_arrival_order() -> None:
    tape = Tape()
    assert tape.take() is None
    tape.key = run_key(42_000)
    tape.trades += (True, 10.0, 1.0, "a", 2.0)
    tape.trades += (False, 20.0, 3.0, "b", 5.0)
    tape.trades += (True, 30.0, 4.0, "a", 1.0)
    run = tape.take()
    assert run is not None
    assert (run.ts, run.end) == (42_000, 42_000)
    assert (run.buy_usd, run.buy_amount) == ([10.0, 30.0], [1.0, 4.0])
    assert (run.sell_usd, run.sell_amount) == ([20.0], [3.0])
    assert run.usd == [10.0, 20.0, 30.0]
    assert run.prices == [2.0, 5.0, 1.0]
    assert (run.high, run.low) == (5.0, 1.0)
    assert (run.buyers, run.sellers, run.traders) == ({"a"}, {"b"}, {"a", "b"})
    # Taken means empty, and the next trade must start a second again.
    assert (tape.trades, tape.key, tape.take()) == ([], -1, None)


def test_a_second_splits_on_its_first_millisecond() -> None:
    # Candles take [s, s + 1 s), windows (s - 1 s, s]: a run must lie in one of each.
    keys = [run_key(ts) for ts in (999, 1000, 1001, 1999, 2000)]
    assert keys == sorted(keys)
    assert len(set(keys)) == 4
    for ts in (999, 1000, 1001, 1999, 2000, 2001):
        tape = Tape()
        tape.key = run_key(ts)
        tape.trades += (True, 1.0, 1.0, "a", 1.0)
        run = tape.take()
        assert run is not None
        assert run.ts <= ts < run.ts + 1000
        assert run.end - 1000 < ts <= run.end


def one_by_one_max(start: float, values: list[float]) -> float:
    best = start
    for value in values:
        if value > best:
            best = value
    return best


def one_by_one_min(start: float, values: list[float]) -> float:
    best = start
    for value in values:
        if value < best:
            best = value
    return best


prices = st.lists(st.sampled_from([NAN, 0.0, -0.0, 1.0, 2.5, math.inf]), min_size=1, max_size=6)


def same(a: float, b: float) -> bool:
    return (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))


@given(prices, st.sampled_from([NAN, 0.0, -0.0, 1.0, 2.5]))
def test_high_and_low_merge_as_one_price_at_a_time(values: list[float], start: float) -> None:
    tape = Tape()
    tape.key = 0
    for price in values:
        tape.trades += (True, 1.0, 1.0, "a", price)
    run = tape.take()
    assert run is not None
    assert same(run.highest(start), one_by_one_max(start, values))
    assert same(run.lowest(start), one_by_one_min(start, values))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False)), st.floats(-1e20, 1e20))
def test_add_up_adds_left_to_right(values: list[float], start: float) -> None:
    total = start
    for value in values:
        total += value
    assert same(add_up(values, start), total)


def test_add_up_does_not_compensate() -> None:
    # One at a time, 1e100 swallows the 1.0; compensated summation would keep it.
    assert add_up([1e100, 1.0, -1e100], 0.0) == 0.0
