"""MarketSimulator: seeded raw events that the engine turns into full payloads."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime

import msgspec
import pytest

from cmcstream.engine.events import AssetListed, MarketEvent, PriceSeries, SupplyChanged, Trade
from cmcstream.engine.market import DAY_MS, HOUR_MS, MarketEngine
from cmcstream.sources.simulator.market import YEAR_MS, MarketSimulator
from cmcstream.sources.simulator.universe import Universe

NOW = 1_778_663_880_111  # the spec's example push time, not on any boundary
FIELDS = ("vu", "mc", "cs", "p24h", "p7d", "p30d", "p60d", "p3m", "p1y", "pytd", "pall", "fdv24h")


def encoded(events: list[MarketEvent]) -> list[bytes]:
    return [msgspec.json.encode(ev) for ev in events]


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe.load(600, seed=3)


@pytest.fixture(scope="module")
def backfilled(universe: Universe) -> tuple[MarketSimulator, MarketEngine]:
    sim = MarketSimulator(universe, seed=11)
    engine = MarketEngine()
    for ev in sim.backfill(NOW):
        engine.apply(ev)
    return sim, engine


def run(sim: MarketSimulator, start: int, steps: int, step_ms: int = 5000) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for k in range(1, steps + 1):
        out += sim.step(start + k * step_ms)
    return out


# -- determinism ------------------------------------------------------------


def test_the_same_seed_gives_the_same_events() -> None:
    u = Universe.load(40)
    a, b = MarketSimulator(u, seed=5), MarketSimulator(u, seed=5)
    assert encoded(list(a.backfill(NOW))) == encoded(list(b.backfill(NOW)))
    assert encoded(run(a, NOW, 20)) == encoded(run(b, NOW, 20))


def test_a_different_seed_gives_different_events() -> None:
    u = Universe.load(40)
    a, b = MarketSimulator(u, seed=5), MarketSimulator(u, seed=6)
    assert encoded(list(a.backfill(NOW))) != encoded(list(b.backfill(NOW)))
    assert encoded(run(a, NOW, 5)) != encoded(run(b, NOW, 5))


def test_live_steps_do_not_depend_on_how_far_the_backfill_was_read() -> None:
    u = Universe.load(40)
    a, b = MarketSimulator(u, seed=5), MarketSimulator(u, seed=5)
    list(a.backfill(NOW))
    next(iter(b.backfill(NOW)))
    assert encoded(run(a, NOW, 6)) == encoded(run(b, NOW, 6))


# -- backfill ---------------------------------------------------------------


def test_backfill_lists_every_asset_then_history_coarse_first(universe: Universe) -> None:
    events = list(MarketSimulator(universe).backfill(NOW))
    n = len(universe)
    listed = events[:n]
    assert all(isinstance(ev, AssetListed) for ev in listed)
    assert [ev.cid for ev in listed] == [a.cid for a in universe]
    btc = [ev for ev in events[n:] if ev.cid == 1]
    assert [type(ev) for ev in btc] == [PriceSeries, PriceSeries, PriceSeries, Trade]
    daily, hourly, fine, trade = btc
    assert isinstance(daily, PriceSeries)
    assert isinstance(hourly, PriceSeries)
    assert isinstance(fine, PriceSeries)
    assert isinstance(trade, Trade)
    assert [s.resolution_ms for s in (daily, hourly, fine)] == [DAY_MS, HOUR_MS, 300_000]
    for s in (daily, hourly, fine):
        end = s.start_ts + len(s.closes) * s.resolution_ms
        assert end == NOW - NOW % s.resolution_ms
        assert s.start_ts % s.resolution_ms == 0
        assert len(s.volumes_usd) == len(s.closes)
    assert daily.start_ts <= NOW - 400 * DAY_MS
    jan1 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000
    assert daily.start_ts < jan1
    assert fine.start_ts <= NOW - 25 * HOUR_MS
    assert trade.ts == NOW
    assert trade.price == universe.assets[0].price


def test_the_three_series_describe_one_path(universe: Universe) -> None:
    events = [ev for ev in MarketSimulator(universe).backfill(NOW) if ev.cid == 1027]
    daily, hourly, fine = (ev for ev in events if isinstance(ev, PriceSeries))

    def close_at(s: PriceSeries, t: int) -> float:
        return s.closes[(t - s.start_ts) // s.resolution_ms - 1]

    last_hour = NOW - NOW % HOUR_MS
    last_day = NOW - NOW % DAY_MS
    assert close_at(hourly, last_hour) == close_at(fine, last_hour)
    assert close_at(hourly, last_hour - 20 * HOUR_MS) == close_at(fine, last_hour - 20 * HOUR_MS)
    assert close_at(daily, last_day) == close_at(hourly, last_day)
    assert close_at(daily, last_day - 5 * DAY_MS) == close_at(hourly, last_day - 5 * DAY_MS)


def test_all_fourteen_fields_are_set_for_the_top_coins(
    backfilled: tuple[MarketSimulator, MarketEngine], universe: Universe
) -> None:
    _, engine = backfilled
    for asset in universe.assets[:200]:
        p = engine.latest_price(asset.cid, NOW)
        assert p is not None, asset.symbol
        assert p.p == asset.price
        for name in FIELDS:
            value = getattr(p, name)
            assert value is not None, (asset.symbol, name)
            assert math.isfinite(value), (asset.symbol, name)
        assert p.mc == p.p * p.cs  # type: ignore[operator]


def test_btc_looks_like_btc(backfilled: tuple[MarketSimulator, MarketEngine]) -> None:
    _, engine = backfilled
    p = engine.latest_price(1, NOW)
    assert p is not None
    assert p.p == pytest.approx(81_187.93284788371)
    assert p.mc == pytest.approx(1_626_089_237_758.01)
    assert p.pall == pytest.approx(131_301_167.42, rel=1e-3)
    assert p.vu == pytest.approx(29_932_025_976.79, rel=0.25)
    assert -25.0 < p.p24h < 25.0  # type: ignore[operator]
    assert -90.0 < p.p1y < 900.0  # type: ignore[operator]


def test_stablecoins_stay_on_their_peg(backfilled: tuple[MarketSimulator, MarketEngine]) -> None:
    _, engine = backfilled
    usdt = engine.latest_price(825, NOW)
    assert usdt is not None
    for name in ("p24h", "p7d", "p30d", "p60d", "p3m", "p1y", "pytd"):
        assert abs(getattr(usdt, name)) < 0.5, name


def test_history_starts_no_earlier_than_launch() -> None:
    btc = Universe.real_assets()[0]
    young = replace(btc, launch_ts=NOW - 10 * DAY_MS)
    sim = MarketSimulator(Universe([young]))
    events = list(sim.backfill(NOW))
    daily = next(ev for ev in events if isinstance(ev, PriceSeries) and ev.resolution_ms == DAY_MS)
    assert daily.start_ts >= young.launch_ts
    engine = MarketEngine()
    for ev in events:
        engine.apply(ev)
    p = engine.latest_price(1, NOW)
    assert p is not None
    assert p.p7d is not None
    assert p.p30d is None
    assert p.p1y is None


# -- live steps ---------------------------------------------------------------


def test_fast_assets_print_every_step_and_the_tail_every_third(universe: Universe) -> None:
    sim = MarketSimulator(universe, seed=1)
    list(sim.backfill(0))
    fast = {a.cid for a in universe if a.rank <= 500}
    for k in range(1, 13):
        trades = [ev for ev in sim.step(k * 5000) if isinstance(ev, Trade)]
        cids = {t.cid for t in trades}
        assert all(t.ts == k * 5000 for t in trades)
        assert all(t.volume_usd >= 0 and t.price > 0 for t in trades)
        if k % 3 == 0:
            assert cids == {a.cid for a in universe}
        else:
            assert cids == fast


def test_a_step_at_or_before_the_previous_one_yields_nothing(universe: Universe) -> None:
    sim = MarketSimulator(universe)
    list(sim.backfill(NOW))
    assert list(sim.step(NOW)) == []
    assert list(sim.step(NOW - 5000)) == []
    fresh = MarketSimulator(universe)
    assert list(fresh.step(NOW)) == []  # the first call only starts the clock
    assert list(fresh.step(NOW + 5000))


def test_supply_grows_once_per_hour_within_the_cap() -> None:
    universe = Universe.load(80)
    sim = MarketSimulator(universe, seed=2, step_ms=60_000)
    start = 10 * HOUR_MS
    list(sim.backfill(start))
    events = run(sim, start, 120, 60_000)  # two hours of 1-minute steps
    changes = [ev for ev in events if isinstance(ev, SupplyChanged)]
    growing = {a.cid for a in universe if a.supply_growth > 0}
    assert {ev.cid for ev in changes} <= growing
    assert sorted({ev.ts for ev in changes}) == [start + HOUR_MS, start + 2 * HOUR_MS]
    by_cid = {a.cid: a for a in universe}
    for ev in changes:
        asset = by_cid[ev.cid]
        assert ev.circulating_supply > asset.circulating_supply
        if asset.max_supply is not None:
            assert ev.circulating_supply <= asset.max_supply


@pytest.mark.parametrize("step_ms", [5000, 60_000])
def test_price_moves_scale_with_the_square_root_of_the_step(step_ms: int) -> None:
    btc = Universe.real_assets()[0]
    asset = replace(btc, volatility=0.8, supply_growth=0.0)
    sim = MarketSimulator(Universe([asset]), seed=9, step_ms=step_ms)
    list(sim.backfill(0))
    prices = [asset.price] + [
        ev.price for ev in run(sim, 0, 4000, step_ms) if isinstance(ev, Trade)
    ]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    expected = 0.8 * math.sqrt(step_ms / YEAR_MS)
    assert statistics.pstdev(returns) == pytest.approx(expected, rel=0.1)


def test_the_engine_follows_the_live_market(
    backfilled: tuple[MarketSimulator, MarketEngine],
) -> None:
    sim, engine = backfilled
    last = NOW
    for k in range(1, 121):  # ten minutes
        last = NOW + k * 5000
        for ev in sim.step(last):
            engine.apply(ev)
    payloads = engine.tick(last - last % 15_000, [1, 1027, 825])
    assert [p.cid for p in payloads] == [1, 1027, 825]
    btc = payloads[0]
    assert 0.8 * 81_187.93 < btc.p < 1.2 * 81_187.93
    assert btc.p24h is not None
    assert btc.vu is not None
