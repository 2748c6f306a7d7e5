"""Per-second buckets: candles and unique traders cut at close equal a batch over the swaps."""

from __future__ import annotations

import math

from hypothesis import given, strategies as st

from cmcstream.engine.candles import LongTraders, SecondBuckets

swaps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3_000),
        st.floats(min_value=1e-6, max_value=1e6),
        st.floats(min_value=0, max_value=1e6),
        st.sampled_from([f"w{i}" for i in range(8)]),
    ),
    min_size=1,
    max_size=150,
)


@given(swaps, st.sampled_from([1_000, 5_000, 30_000, 60_000]))
def test_candles_and_traders_equal_a_batch(
    raw: list[tuple[int, float, float, str]], length: int
) -> None:
    buckets = SecondBuckets()
    ts = 10_000_000
    seen = []
    for gap, price, usd, trader in raw:
        ts += gap
        buckets.add(ts, price, usd, trader)
        seen.append((ts, price, usd, trader))
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
            assert math.isclose(vu, sum(s[2] for s in inside), rel_tol=1e-9, abs_tol=1e-6)
            assert low <= min(o, c) <= max(o, c) <= h
        assert buckets.unique(start, length) == len({s[3] for s in inside})
        start += length


def test_close_before_finds_the_previous_price() -> None:
    buckets = SecondBuckets()
    assert buckets.close_before(5_000) is None
    buckets.add(1_200, 3.0, 1.0, "a")
    buckets.add(1_900, 4.0, 1.0, "a")
    assert buckets.close_before(5_000) == 4.0
    assert buckets.last_price == 4.0


def test_long_traders_keep_the_previous_interval() -> None:
    counter = LongTraders(3_600_000)
    counter.add(10, "a")
    counter.add(20, "b")
    counter.add(3_600_000, "c")  # the next hour already started
    assert counter.unique(0) == 2
    assert counter.unique(3_600_000) == 1
    counter.add(3 * 3_600_000, "d")
    assert counter.unique(0) == 0
