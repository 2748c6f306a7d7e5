"""Per-second buckets: candles and unique traders cut at close equal a batch over the swaps."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cmcstream.engine.candles import LongTraders, SecondBuckets
from cmcstream.engine.trades import Tape, TradeRun, run_key

swaps = st.lists(
    st.tuples(
        st.one_of(st.integers(min_value=0, max_value=400), st.integers(0, 3_000)),
        st.floats(min_value=1e-6, max_value=1e6),
        st.floats(min_value=0, max_value=1e6),
        st.sampled_from([f"w{i}" for i in range(8)]),
    ),
    min_size=1,
    max_size=150,
)


def runs(swaps: list[tuple[int, float, float, str]]) -> list[TradeRun]:
    """The swaps ``(ts, price, usd, trader)`` a run at a time, as the engine folds them."""
    out = []
    tape = Tape()
    for ts, price, usd, trader in swaps:
        if tape.key != run_key(ts):
            run = tape.take()
            if run is not None:
                out.append(run)
            tape.key = run_key(ts)
        tape.trades += (True, usd, 1.0, trader, price)
    run = tape.take()
    if run is not None:
        out.append(run)
    return out


def one(second: int, *trades: tuple[float, str]) -> TradeRun:
    [run] = runs(
        [(second * 1000 + 1 + i, price, 1.0, trader) for i, (price, trader) in enumerate(trades)]
    )
    return run


@given(swaps, st.sampled_from([1_000, 5_000, 30_000, 60_000]))
def test_candles_and_traders_equal_a_batch(
    raw: list[tuple[int, float, float, str]], length: int
) -> None:
    buckets = SecondBuckets()
    ts = 10_000_000
    seen = []
    for gap, price, usd, trader in raw:
        ts += gap
        seen.append((ts, price, usd, trader))
    for run in runs(seen):
        buckets.add(run)
    start = seen[0][0] - seen[0][0] % length
    while start <= ts:
        inside = [s for s in seen if start <= s[0] < start + length]
        candle = buckets.candle(start, length)
        if not inside:
            assert candle is None
        else:
            assert candle is not None
            o, h, low, c, vu = candle
            assert o == inside[0][1]
            assert c == inside[-1][1]
            assert h == max(s[1] for s in inside)
            assert low == min(s[1] for s in inside)
            # Each second adds its swaps one by one; the candle adds up its seconds.
            per_second: dict[int, float] = {}
            for s in inside:
                per_second[s[0] // 1000] = per_second.get(s[0] // 1000, 0.0) + s[2]
            assert vu == sum(per_second.values())
            assert low <= min(o, c) <= max(o, c) <= h
        assert buckets.unique(start, length) == len({s[3] for s in inside})
        start += length


def test_a_second_folded_in_two_runs_is_one_bucket() -> None:
    buckets = SecondBuckets()
    buckets.add(one(7, (3.0, "a"), (5.0, "b")))
    buckets.add(one(7, (1.0, "a"), (4.0, "c")))
    assert buckets.candle(7_000, 1_000) == (3.0, 5.0, 1.0, 4.0, 4.0)
    assert buckets.unique(7_000, 1_000) == 3


def test_close_before_finds_the_previous_price() -> None:
    buckets = SecondBuckets()
    assert buckets.close_before(5_000) is None
    buckets.add(one(1, (3.0, "a"), (4.0, "a")))
    assert buckets.close_before(5_000) == 4.0
    assert buckets.last_price == 4.0


def test_long_traders_keep_the_previous_interval() -> None:
    counter = LongTraders(3_600_000)
    counter.add(one(0, (1.0, "a"), (1.0, "b")))
    counter.add(one(3_600, (1.0, "c")))  # the next hour already started
    assert counter.unique(0) == 2
    assert counter.unique(3_600_000) == 1
    counter.add(one(3 * 3_600, (1.0, "d")))
    assert counter.unique(0) == 0
