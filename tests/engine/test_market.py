"""MarketEngine: every payload field from hand-made history, windows, cadence."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from cmcstream.engine.events import AssetListed, MarketEvent, PriceSeries, SupplyChanged, Trade
from cmcstream.engine.market import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    VOLUME_BUCKET_MS,
    VOLUME_BUCKETS,
    MarketEngine,
)
from cmcstream.protocol.payloads import CryptoLatestPrice

MIDNIGHT = int(datetime(2026, 5, 13, tzinfo=UTC).timestamp()) * 1000
LONG_AGO = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp()) * 1000
FIELDS = list(CryptoLatestPrice.__struct_fields__)


def listed(
    cid: int = 1,
    *,
    rank: int = 1,
    cs: float | None = 1_000.0,
    max_supply: float | None = 2_000.0,
    total_supply: float | None = None,
    launch_ts: int = LONG_AGO,
    launch_price: float | None = 4.0,
) -> AssetListed:
    return AssetListed(
        cid=cid,
        symbol=f"C{cid}",
        name=f"Coin {cid}",
        rank=rank,
        circulating_supply=cs,
        max_supply=max_supply,
        total_supply=total_supply,
        launch_ts=launch_ts,
        launch_price=launch_price,
    )


def engine_with(*events: object) -> MarketEngine:
    engine = MarketEngine()
    for ev in events:
        engine.apply(ev)  # type: ignore[arg-type]
    return engine


def daily_linear(cid: int = 1, days: int = 400, end: int = MIDNIGHT) -> PriceSeries:
    """Daily bars ending at ``end``; the close ``k`` days before it is ``100 + days - 1 - k``."""
    return PriceSeries(
        cid=cid,
        resolution_ms=DAY_MS,
        start_ts=end - days * DAY_MS,
        closes=[100.0 + i for i in range(days)],
        volumes_usd=[288.0] * days,
    )


def pct(p: float, ref: float) -> float:
    return (p - ref) / ref * 100.0


def diffs(xs: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(xs)]


# -- every field, by hand --------------------------------------------------


def test_p24h_from_a_series_where_the_price_went_from_100_to_110() -> None:
    closes = [100.0] * 47 + [110.0]
    engine = engine_with(
        listed(),
        PriceSeries(1, HOUR_MS, MIDNIGHT - 48 * HOUR_MS, closes, [1.0] * 48),
    )
    payload = engine.latest_price(1, MIDNIGHT)
    assert payload is not None
    assert payload.p == 110.0
    assert payload.p24h == 10.0
    assert payload.fdv24h == 10.0


def test_every_field_matches_a_hand_computation() -> None:
    engine = engine_with(listed(cs=1_000.0, launch_price=4.0), daily_linear())
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    last = 499.0
    ytd_days = (MIDNIGHT - int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000) // DAY_MS
    assert p.cid == 1
    assert p.p == last
    assert p.cs == 1_000.0
    assert p.mc == last * 1_000.0
    assert p.p24h == pct(last, 498.0)
    assert p.p7d == pct(last, 492.0)
    assert p.p30d == pct(last, 469.0)
    assert p.p60d == pct(last, 439.0)
    assert p.p3m == pct(last, 409.0)
    assert p.p1y == pct(last, 134.0)
    assert p.pytd == pct(last, last - ytd_days)
    assert p.pall == pct(last, 4.0)
    assert p.fdv24h == p.p24h
    # The last daily bar is spread over its 5-minute buckets; the window holds
    # the current (empty) bucket and the 287 before it.
    assert p.vu == pytest.approx(287.0)


def test_cs_is_whole_coins_and_mc_is_exactly_price_times_cs() -> None:
    engine = engine_with(listed(cs=20_028_705.62), daily_linear())
    engine.apply(Trade(1, MIDNIGHT + 1, 81_187.93284788371, 1.0))
    p = engine.latest_price(1, MIDNIGHT + 1)
    assert p is not None
    assert p.cs == 20_028_706
    assert type(p.cs) is int
    assert p.mc == p.p * 20_028_706
    # The documentation's example, byte for byte where the two meet.
    wire = msgspec.json.encode(p)
    assert b'"cs":20028706,' in wire
    assert b'"mc":1626089237758.0056,' in wire


def test_an_unknown_supply_gives_null_cs_mc_and_fdv() -> None:
    engine = engine_with(listed(cs=None, max_supply=None), daily_linear())
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert (p.cs, p.mc, p.fdv24h) == (None, None, None)
    assert p.p24h is not None
    assert p.p1y is not None
    wire = msgspec.json.encode(p)
    assert b'"mc":null,"cs":null,' in wire
    assert wire.endswith(b'"fdv24h":null}')
    # A supply that becomes known later is used from then on.
    engine.apply(SupplyChanged(1, MIDNIGHT + 1, 600.0, None))
    q = engine.latest_price(1, MIDNIGHT + 1)
    assert q is not None
    assert (q.cs, q.mc, q.fdv24h) == (600, 499.0 * 600, None)


def test_a_reference_between_two_closes_is_the_last_close_before_it() -> None:
    engine = engine_with(listed(), daily_linear())
    # No trade since midnight: 24 h before noon lies between the close one day
    # ago (498) and the live price (499); the reference is the close, not a
    # point on a line between them.
    p = engine.latest_price(1, MIDNIGHT + 12 * HOUR_MS)
    assert p is not None
    assert p.p24h == pct(499.0, 498.0)
    p = engine.latest_price(1, MIDNIGHT + DAY_MS - 1)
    assert p is not None
    assert p.p24h == pct(499.0, 498.0)
    p = engine.latest_price(1, MIDNIGHT + DAY_MS)
    assert p is not None
    assert p.p24h == 0.0  # now a day after the last close: the live price itself


@pytest.mark.parametrize(
    ("field", "step_ms", "reach_ms"),
    [("p24h", 5_000, DAY_MS), ("p7d", 60_000, 7 * DAY_MS)],
)
def test_references_keep_the_volatility_of_the_price_path(
    field: str, step_ms: int, reach_ms: int
) -> None:
    # A seeded random walk with one trade per step. Once the reference reaches
    # back into the walk, it must move as much per push as the price does:
    # interpolating between closes made the 24 h reference 8 times calmer than
    # the price (and the 7-day one, read from hourly closes, 8 times more).
    rng = random.Random(4)
    engine = engine_with(listed())
    scale = 0.5 * math.sqrt(step_ms / (365.25 * DAY_MS))
    x = math.log(100.0)
    spot: list[float] = []
    ref: list[float] = []
    warm = (reach_ms + HOUR_MS) // step_ms
    for k in range(warm + 4 * DAY_MS // step_ms):
        t = MIDNIGHT + k * step_ms
        x += scale * rng.gauss(0.0, 1.0)
        engine.apply(Trade(1, t, math.exp(x), 1.0))
        if k >= warm:
            p = engine.latest_price(1, t)
            assert p is not None
            change = getattr(p, field)
            spot.append(math.log(p.p))
            ref.append(math.log(p.p / (1.0 + change / 100.0)))
    ratio = statistics.fmean(d * d for d in diffs(ref)) / statistics.fmean(
        d * d for d in diffs(spot)
    )
    assert ratio == pytest.approx(1.0, abs=0.3)


def test_references_come_from_the_finest_tier_that_reaches_back() -> None:
    # Trades every minute for 26 h, the price rising 1 per minute.
    engine = engine_with(listed())
    start = MIDNIGHT
    for m in range(26 * 60 + 1):
        engine.apply(Trade(1, start + m * MINUTE_MS, 1_000.0 + m, 1.0))
    now = start + 26 * 60 * MINUTE_MS
    p = engine.latest_price(1, now)
    assert p is not None
    # The close of a 5-minute bucket is the price of its last minute.
    ref = 1_000.0 + (26 * 60 - 24 * 60) - 1
    assert p.p24h == pct(1_000.0 + 26 * 60, ref)
    assert p.p7d is None


def test_launch_price_unknown_gives_no_all_time_change() -> None:
    engine = engine_with(listed(launch_price=None), daily_linear())
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.pall is None


def test_unavailable_references_are_none() -> None:
    # Two days of hourly history: 24 h works, nothing longer does.
    engine = engine_with(
        listed(),
        PriceSeries(1, HOUR_MS, MIDNIGHT - 48 * HOUR_MS, [100.0] * 48, [1.0] * 48),
    )
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.p24h == 0.0
    assert p.vu is not None
    for name in ("p7d", "p30d", "p60d", "p3m", "p1y", "pytd"):
        assert getattr(p, name) is None, name


def test_volume_is_none_while_the_window_is_not_covered() -> None:
    engine = engine_with(listed(launch_ts=LONG_AGO))
    engine.apply(Trade(1, MIDNIGHT, 10.0, 5.0))
    p = engine.latest_price(1, MIDNIGHT + HOUR_MS)
    assert p is not None
    assert p.vu is None
    assert p.p24h is None
    # An asset launched within the window has all its volume in view.
    fresh = engine_with(listed(launch_ts=MIDNIGHT))
    fresh.apply(Trade(1, MIDNIGHT, 10.0, 5.0))
    q = fresh.latest_price(1, MIDNIGHT + HOUR_MS)
    assert q is not None
    assert q.vu == 5.0


def test_unknown_or_unpriced_assets_have_no_payload() -> None:
    engine = engine_with(listed())
    assert engine.latest_price(1, MIDNIGHT) is None
    assert engine.latest_price(2, MIDNIGHT) is None
    engine.apply(Trade(2, MIDNIGHT, 1.0, 1.0))
    assert engine.latest_price(2, MIDNIGHT) is None
    assert engine.statistics()["unknown_asset_events"] == 1


def test_fdv_change_follows_the_diluted_supply() -> None:
    closes = [100.0] * 47 + [110.0]
    engine = engine_with(
        listed(cs=500.0, max_supply=None, total_supply=1_000.0),
        PriceSeries(1, HOUR_MS, MIDNIGHT - 48 * HOUR_MS, closes, [1.0] * 48),
        SupplyChanged(1, MIDNIGHT - HOUR_MS, circulating_supply=600.0, total_supply=1_100.0),
    )
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.p24h == 10.0
    assert p.fdv24h == pytest.approx((110.0 * 1_100.0 - 100.0 * 1_000.0) / 1_000.0)
    assert p.cs == 600.0
    assert p.mc == 110.0 * 600.0
    # A day later the change is in both ends of the comparison.
    engine.apply(Trade(1, MIDNIGHT + DAY_MS, 110.0, 1.0))
    q = engine.latest_price(1, MIDNIGHT + DAY_MS)
    assert q is not None
    assert q.fdv24h == q.p24h == 0.0


def test_a_capped_asset_changes_fdv_exactly_like_its_price() -> None:
    engine = engine_with(listed(cs=500.0, max_supply=2_000.0), daily_linear())
    engine.apply(SupplyChanged(1, MIDNIGHT - HOUR_MS, circulating_supply=700.0))
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.fdv24h == p.p24h


def test_a_late_trade_counts_volume_but_does_not_move_the_price() -> None:
    engine = engine_with(listed(launch_ts=MIDNIGHT))
    engine.apply(Trade(1, MIDNIGHT + 10_000, 10.0, 1.0))
    engine.apply(Trade(1, MIDNIGHT + 5_000, 9.0, 2.0))
    p = engine.latest_price(1, MIDNIGHT + 10_000)
    assert p is not None
    assert p.p == 10.0
    assert p.vu == 3.0
    assert engine.statistics()["late_trades"] == 1


def test_an_older_series_extends_live_history_back() -> None:
    # Live trades first; then a backfill arrives for the 25 h before them.
    engine = engine_with(listed())
    first = MIDNIGHT
    for m in range(0, 60, 5):
        engine.apply(Trade(1, first + m * MINUTE_MS, 120.0, 1.0))
    now = first + 55 * MINUTE_MS
    before = engine.latest_price(1, now)
    assert before is not None
    assert before.p24h is None
    engine.apply(
        PriceSeries(1, 5 * MINUTE_MS, first - 300 * 5 * MINUTE_MS, [100.0] * 300, [1.0] * 300)
    )
    after = engine.latest_price(1, now)
    assert after is not None
    assert after.p == 120.0
    assert after.p24h == pytest.approx(20.0)
    assert after.vu is not None


def test_relisting_keeps_history_and_changes_rank() -> None:
    engine = engine_with(listed(rank=3), daily_linear())
    assert engine.cadence_ms(1) == 5000
    engine.apply(listed(rank=900))
    assert engine.cadence_ms(1) == 15000
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.p1y is not None


# -- the 24 h volume window ------------------------------------------------


def batch_volume(trades: list[tuple[int, float]], now: int) -> float:
    first = now // VOLUME_BUCKET_MS - VOLUME_BUCKETS + 1
    return sum(v for ts, v in trades if first <= ts // VOLUME_BUCKET_MS and ts <= now)


def test_volume_is_the_sum_of_the_last_24_hours_and_rolls_off() -> None:
    engine = engine_with(listed(launch_ts=MIDNIGHT))
    trades = [(MIDNIGHT + k * 10 * MINUTE_MS, float(k + 1)) for k in range(6 * 30)]  # 30 h
    pending = list(trades)
    for now in (
        MIDNIGHT + 2 * HOUR_MS,
        MIDNIGHT + 24 * HOUR_MS,
        MIDNIGHT + 30 * HOUR_MS - 1,
        MIDNIGHT + 40 * HOUR_MS,
    ):
        while pending and pending[0][0] <= now:
            ts, v = pending.pop(0)
            engine.apply(Trade(1, ts, 1.0, v))
        p = engine.latest_price(1, now)
        assert p is not None
        assert p.vu == pytest.approx(batch_volume(trades, now), rel=1e-12)
    late = engine.latest_price(1, MIDNIGHT + 60 * HOUR_MS)
    assert late is not None
    assert late.vu == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20 * MINUTE_MS), st.floats(0.0, 1e9, allow_nan=False)),
        min_size=1,
        max_size=150,
    ),
    st.lists(st.integers(0, 3 * DAY_MS), min_size=1, max_size=6),
)
def test_incremental_volume_equals_batch_recomputation(
    gaps_and_volumes: list[tuple[int, float]], query_offsets: list[int]
) -> None:
    trades: list[tuple[int, float]] = []
    ts = MIDNIGHT
    for gap, v in gaps_and_volumes:
        ts += gap
        trades.append((ts, v))
    engine = engine_with(listed(launch_ts=trades[0][0]))
    queries = sorted(trades[-1][0] + off for off in query_offsets)
    pending = list(trades)
    for now in queries:
        while pending and pending[0][0] <= now:
            t, v = pending.pop(0)
            engine.apply(Trade(1, t, 1.0, v))
        p = engine.latest_price(1, now)
        assert p is not None
        assert p.vu == pytest.approx(batch_volume(trades, now), rel=1e-9, abs=1e-3)


def test_volume_survives_many_laps_of_the_ring() -> None:
    engine = engine_with(listed(launch_ts=MIDNIGHT))
    trades = [(MIDNIGHT + k * 7 * MINUTE_MS, 1e6 + k * 0.1) for k in range(5 * 24 * 60 // 7)]
    for ts, v in trades:
        engine.apply(Trade(1, ts, 1.0, v))
    now = trades[-1][0]
    p = engine.latest_price(1, now)
    assert p is not None
    assert p.vu == pytest.approx(batch_volume(trades, now), rel=1e-12)


# -- cadence ------------------------------------------------------------------


def two_asset_engine() -> MarketEngine:
    return engine_with(
        listed(1, rank=1),
        listed(2, rank=501),
        Trade(1, 0, 10.0, 1.0),
        Trade(2, 0, 20.0, 1.0),
    )


def test_fast_assets_every_tick_slow_ones_at_slow_boundaries() -> None:
    engine = two_asset_engine()
    pushed: dict[int, list[int]] = {1: [], 2: []}
    for now in range(5000, 60_001, 5000):
        for payload in engine.tick(now, [1, 2, 999]):
            pushed[payload.cid].append(now)
    assert pushed[1] == list(range(5000, 60_001, 5000))
    assert pushed[2] == [15_000, 30_000, 45_000, 60_000]


def test_a_late_tick_still_crosses_the_slow_boundary() -> None:
    engine = two_asset_engine()
    assert [p.cid for p in engine.tick(10_000, [2])] == []
    assert [p.cid for p in engine.tick(15_040, [2])] == [2]
    assert [p.cid for p in engine.tick(20_010, [2])] == []


def test_a_catching_up_loop_does_not_push_slow_assets_twice_in_a_row() -> None:
    # The loop stalled past 30 s, resumed at the 40 s boundary, then hit 45 s.
    engine = two_asset_engine()
    pushed = [
        now
        for now in (15_000, 20_000, 25_000, 40_000, 45_000, 50_000, 55_000, 60_000)
        if engine.tick(now, [2])
    ]
    assert pushed == [15_000, 40_000, 60_000]


def test_the_first_tick_pushes_slow_assets_only_on_a_boundary() -> None:
    engine = two_asset_engine()
    assert [p.cid for p in engine.tick(45_000, [1, 2])] == [1, 2]
    other = two_asset_engine()
    assert [p.cid for p in other.tick(50_000, [1, 2])] == [1]


def test_tick_ignores_unknown_ids_and_keeps_the_callers_order() -> None:
    engine = two_asset_engine()
    out = engine.tick(15_000, [2, 42, 1])
    assert [p.cid for p in out] == [2, 1]
    assert engine.tick(20_000, []) == []


def test_cadence_and_knowledge_of_ids() -> None:
    engine = two_asset_engine()
    assert engine.knows(1)
    assert not engine.knows(3)
    assert engine.cadence_ms(1) == 5000
    assert engine.cadence_ms(2) == 15000
    assert engine.cadence_ms(3) is None
    custom = MarketEngine(fast_cadence_ms=1000, slow_cadence_ms=3000, fast_rank_max=1)
    custom.apply(listed(1, rank=2))
    assert custom.cadence_ms(1) == 3000


def test_bad_cadences_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        MarketEngine(fast_cadence_ms=0)
    with pytest.raises(ValueError, match="shorter"):
        MarketEngine(fast_cadence_ms=10_000, slow_cadence_ms=5_000)


def test_statistics_count_what_was_applied() -> None:
    engine = two_asset_engine()
    engine.apply(daily_linear(1, days=3, end=0))
    engine.tick(15_000, [1, 2])
    stats = engine.statistics()
    assert stats["assets"] == 2
    assert stats["priced"] == 2
    assert stats["trades"] == 2
    assert stats["series"] == 1
    assert stats["ticks"] == 1
    assert stats["payloads"] == 2


def test_payload_has_the_fourteen_fields_of_the_spec() -> None:
    engine = engine_with(listed(), daily_linear())
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert list(p.__struct_fields__) == FIELDS
    assert all(getattr(p, f) is not None for f in FIELDS)
    assert all(math.isfinite(getattr(p, f)) for f in FIELDS)


def test_events_round_trip_through_json() -> None:
    events = [
        listed(),
        daily_linear(days=2),
        Trade(1, MIDNIGHT, 1.5, 2.0),
        SupplyChanged(1, MIDNIGHT, 10.0),
    ]
    decoder = msgspec.json.Decoder(list[MarketEvent])
    assert decoder.decode(msgspec.json.encode(events)) == events


def test_an_unaligned_series_is_interpolated_into_the_tiers() -> None:
    n = 48
    start = MIDNIGHT - n * HOUR_MS + 30 * MINUTE_MS  # bars end on the half hour
    engine = engine_with(
        listed(),
        PriceSeries(1, HOUR_MS, start, [100.0 + i for i in range(n)], [1.0] * n),
    )
    now = start + n * HOUR_MS
    p = engine.latest_price(1, now)
    assert p is not None
    # A straight line survives any interpolation: the hourly close 24.5 h
    # before the last bar's end is the reference 24 h back.
    assert p.p24h == pytest.approx(pct(100.0 + n - 1, 100.0 + n - 1 - 24.5))


def test_bars_shorter_than_a_volume_bucket_add_up_in_it() -> None:
    n = 30 * 60
    engine = engine_with(
        listed(),
        PriceSeries(1, MINUTE_MS, MIDNIGHT - n * MINUTE_MS, [50.0] * (n - 1) + [55.0], [1.0] * n),
    )
    p = engine.latest_price(1, MIDNIGHT)
    assert p is not None
    assert p.vu == pytest.approx(287 * 5.0)
    assert p.p24h == pytest.approx(10.0)


def test_a_series_after_a_gap_does_not_bridge_it() -> None:
    engine = engine_with(listed())
    engine.apply(Trade(1, MIDNIGHT, 100.0, 1.0))
    later = MIDNIGHT + 7 * DAY_MS
    engine.apply(
        PriceSeries(1, 5 * MINUTE_MS, later - 300 * 5 * MINUTE_MS, [120.0] * 300, [1.0] * 300)
    )
    p = engine.latest_price(1, later)
    assert p is not None
    assert p.p == 120.0
    assert p.p24h == 0.0
    assert p.p7d is None


def test_an_older_series_with_a_gap_before_live_data_is_ignored() -> None:
    engine = engine_with(listed())
    engine.apply(Trade(1, MIDNIGHT, 100.0, 1.0))
    engine.apply(
        PriceSeries(
            1, 5 * MINUTE_MS, MIDNIGHT - 2 * HOUR_MS - 60 * 5 * MINUTE_MS, [90.0] * 60, [1.0] * 60
        )
    )
    p = engine.latest_price(1, MIDNIGHT + HOUR_MS)
    assert p is not None
    assert p.p == 100.0
    assert p.p24h is None


def test_a_trade_after_a_long_silence_carries_the_last_close_forward() -> None:
    engine = engine_with(listed(), daily_linear())
    engine.apply(Trade(1, MIDNIGHT + 3 * DAY_MS, 600.0, 1.0))
    p = engine.latest_price(1, MIDNIGHT + 3 * DAY_MS)
    assert p is not None
    # Nothing traded between midnight and the print: the day before was still 499.
    assert p.p24h == pytest.approx(pct(600.0, 499.0))
    assert p.p7d == pytest.approx(pct(600.0, 495.0))
