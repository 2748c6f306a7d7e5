"""MarketSimulator: seeded raw events that the engine turns into full payloads."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from cmcstream.client.frames import FrameDecoder
from cmcstream.client.payloads import CryptoLatestPrice as ClientPrice
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


# The documentation's example push (PROTOCOL.md §9.1), at NOW.
DOC_BTC = {
    "p24h": 0.534347439686,
    "p7d": -0.769630510488,
    "p30d": 14.825850522161,
    "p60d": 14.895817222241,
    "p3m": 20.814087592967,
    "p1y": -21.146722852984,
    "pytd": -8.280487978902,
    "pall": 131301167.42003132,
}


@pytest.mark.parametrize("seed", [11, 7])
def test_btc_at_the_documented_time_is_the_documented_push(seed: int) -> None:
    sim = MarketSimulator(Universe.load(300, seed=seed), seed=seed)
    engine = MarketEngine()
    for ev in sim.backfill(NOW):
        engine.apply(ev)
    p = engine.latest_price(1, NOW)
    assert p is not None
    assert p.p == 81_187.93284788371
    assert p.cs == 20_028_706
    assert p.mc == pytest.approx(1_626_089_237_758.01, abs=0.01)
    assert p.vu == pytest.approx(29_932_025_976.79, rel=0.25)
    for name, documented in DOC_BTC.items():
        assert getattr(p, name) == pytest.approx(documented, rel=1e-6, abs=1e-4), name
    assert b'"cs":20028706,' in msgspec.json.encode(p)


def test_other_top_coins_start_at_their_public_reference_prices(
    backfilled: tuple[MarketSimulator, MarketEngine], universe: Universe
) -> None:
    _, engine = backfilled
    # coins.csv price against anchors.csv: the year open, 3 months and 1 year back.
    expected = {
        1027: {"pytd": (2460.0, 3000.0), "p3m": (2460.0, 1915.0), "p1y": (2460.0, 2600.0)},
        52: {"pytd": (2.05, 1.88), "p3m": (2.05, 1.36), "p1y": (2.05, 2.5)},
        5426: {"p3m": (135.0, 78.08)},
        74: {"p3m": (0.165, 0.0925)},
    }
    for cid, fields in expected.items():
        p = engine.latest_price(cid, NOW)
        assert p is not None
        for name, (now, then) in fields.items():
            assert getattr(p, name) == pytest.approx((now - then) / then * 100.0), (cid, name)


def test_anchored_history_keeps_the_seeded_path_elsewhere() -> None:
    u = Universe.load(20)

    def btc_daily(seed: int) -> list[float]:
        events = MarketSimulator(u, seed=seed).backfill(NOW)
        return next(
            ev.closes
            for ev in events
            if isinstance(ev, PriceSeries) and ev.cid == 1 and ev.resolution_ms == DAY_MS
        )

    a, b, c = btc_daily(3), btc_daily(3), btc_daily(4)
    assert a == b
    assert a != c
    # Only the reference points are shared by every seed.
    same = sum(1 for x, y in zip(a, c, strict=True) if x == y)
    assert same <= 8


def test_the_history_moves_like_the_live_path(universe: Universe) -> None:
    # Two hours of 5 s steps from a backfill. The 24 h reference walks back
    # through the generated history; it must move per push as much as the
    # price itself (the old history, read between its 5-minute closes, moved
    # 8 times less).
    sim = MarketSimulator(universe, seed=5)
    engine = MarketEngine()
    for ev in sim.backfill(NOW):
        engine.apply(ev)
    cids = [a.cid for a in universe.assets[:60] if a.peg is None]
    spot: dict[int, list[float]] = {c: [] for c in cids}
    ref: dict[int, list[float]] = {c: [] for c in cids}
    for k in range(1, 1441):
        t = NOW + k * 5000
        for ev in sim.step(t):
            engine.apply(ev)
        for c in cids:
            p = engine.latest_price(c, t)
            assert p is not None
            assert p.p24h is not None
            spot[c].append(math.log(p.p))
            ref[c].append(math.log(p.p / (1.0 + p.p24h / 100.0)))

    def var(xs: list[float]) -> float:
        return statistics.fmean((b - a) ** 2 for a, b in itertools.pairwise(xs))

    ratio = statistics.fmean(var(ref[c]) / var(spot[c]) for c in cids)
    assert ratio == pytest.approx(1.0, abs=0.3)


def test_some_tail_assets_push_null_supply_and_the_top_never(
    backfilled: tuple[MarketSimulator, MarketEngine], universe: Universe
) -> None:
    _, engine = backfilled
    nulls = []
    for a in universe:
        p = engine.latest_price(a.cid, NOW)
        assert p is not None
        if p.cs is None:
            assert p.mc is None
            assert p.fdv24h is None
            assert p.p24h is not None
            nulls.append(a)
        else:
            assert p.mc == p.p * p.cs
    assert nulls
    assert all(a.generated and a.rank > 200 for a in nulls)
    # The client reads them as None, in float and in Decimal mode.
    frame = msgspec.json.encode(
        {
            "type": "data",
            "channel": "market@crypto_latest_price",
            "params": {"crypto_ids": nulls[0].cid},
            "data": engine.latest_price(nulls[0].cid, NOW),
            "ts": NOW,
        }
    )
    assert b'"mc":null,"cs":null,' in frame
    for numbers in ("float", "decimal"):
        decoder = FrameDecoder(numbers)  # type: ignore[arg-type]
        env = decoder.envelope(frame)
        assert env is not None
        push = decoder.push(env)
        assert push is not None
        assert isinstance(push.data, ClientPrice)
        assert (push.data.mc, push.data.cs, push.data.fdv24h) == (None, None, None)
        assert push.data.p is not None


def test_cs_reaches_the_client_as_a_whole_number(
    backfilled: tuple[MarketSimulator, MarketEngine],
) -> None:
    _, engine = backfilled
    frame = msgspec.json.encode(
        {
            "type": "data",
            "channel": "market@crypto_latest_price",
            "params": {"crypto_ids": 1},
            "data": engine.latest_price(1, NOW),
            "ts": NOW,
        }
    )
    assert b'"cs":20028706,' in frame
    for numbers, kind in (("float", float), ("decimal", Decimal)):
        decoder = FrameDecoder(numbers)  # type: ignore[arg-type]
        env = decoder.envelope(frame)
        assert env is not None
        push = decoder.push(env)
        assert push is not None
        assert push.data.cs == 20_028_706
        assert isinstance(push.data.cs, kind)


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
