"""Rolling windows: incremental results equal a batch recomputation over the same trades."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from cmcstream.engine.windows import RollingWindow

Trade = tuple[int, bool, float, float, str, float]

trades_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5_000),  # gap to the previous trade, ms
        st.booleans(),
        st.floats(min_value=0, max_value=1e6),
        st.floats(min_value=0, max_value=1e6),
        st.sampled_from([f"w{i}" for i in range(12)]),
        st.floats(min_value=1e-6, max_value=1e6),
    ),
    max_size=200,
)


def batch(trades: list[Trade], window: RollingWindow, now: int) -> dict[str, object]:
    first_bucket = now // window.bucket_ms - window.size + 1
    live = [t for t in trades if t[0] // window.bucket_ms >= first_bucket]
    buys = [t for t in live if t[1]]
    sells = [t for t in live if not t[1]]
    return {
        "bc": len(buys),
        "sc": len(sells),
        "bvu": sum(t[2] for t in buys),
        "svu": sum(t[2] for t in sells),
        "bvn": sum(t[3] for t in buys),
        "svn": sum(t[3] for t in sells),
        "ut": len({t[4] for t in live}),
        "but": len({t[4] for t in buys}),
        "sut": len({t[4] for t in sells}),
        "h": max((t[5] for t in live), default=None),
        "l": min((t[5] for t in live), default=None),
        "open": live[0][5] if live else None,
        "last": live[-1][5] if live else None,
    }


@settings(max_examples=150)
@given(trades_strategy, st.integers(min_value=0, max_value=120_000))
def test_incremental_equals_batch(
    raw: list[tuple[int, bool, float, float, str, float]], tail: int
) -> None:
    window = RollingWindow(60_000, 60)
    trades: list[Trade] = []
    ts = 1_000_000
    for gap, buy, usd, native, trader, price in raw:
        ts += gap
        trades.append((ts, buy, usd, native, trader, price))
        window.add(ts, buy, usd, native, trader, price)
    now = ts + tail
    got = window.totals(now)
    want = batch(trades, window, now)
    for key in ("bc", "sc", "ut", "but", "sut", "h", "l", "open", "last"):
        assert getattr(got, key) == want[key], key
    for key in ("bvu", "svu", "bvn", "svn"):
        assert math.isclose(getattr(got, key), want[key], rel_tol=1e-9, abs_tol=1e-6), key  # type: ignore[arg-type]
    assert got.ut <= got.but + got.sut


def test_window_rolls_off_and_resets_after_a_long_gap() -> None:
    window = RollingWindow(10_000, 10)
    window.add(0, True, 5.0, 1.0, "a", 2.0)
    window.add(9_500, False, 3.0, 1.0, "b", 4.0)
    totals = window.totals(9_999)
    assert (totals.bc, totals.sc, totals.ut) == (1, 1, 2)
    totals = window.totals(10_000)  # the bucket of t=0 left the window
    assert (totals.bc, totals.sc, totals.ut, totals.bvu) == (0, 1, 1, 0.0)
    assert (totals.open, totals.last) == (4.0, 4.0)
    totals = window.totals(1_000_000)
    assert (totals.bc, totals.sc, totals.ut, totals.h) == (0, 0, 0, None)


def test_window_length_must_split_evenly() -> None:
    with pytest.raises(ValueError, match="whole number"):
        RollingWindow(1000, 7)
