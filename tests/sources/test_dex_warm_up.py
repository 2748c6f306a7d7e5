"""The DEX world's warm-up: a week of history before the start fills every window."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cmcstream.engine.events import MarketEvent, PriceSeries, Swap, Trade
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.sources.simulator.dex import DEFAULT_PRICES, DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.reference_prices import ReferencePrices

START = 1_778_659_200_000
HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass
class Warm:
    world: DexWorld
    sim: DexSimulator
    engine: OnchainEngine
    swap_times: list[int]
    batches: int


@pytest.fixture(scope="module")
def warm() -> Warm:
    world = DexWorld.build(7)
    sim = DexSimulator(world, seed=7)
    quotes: dict[int, float] = dict(DEFAULT_PRICES)
    engine = OnchainEngine(quotes.get)
    swap_times: list[int] = []
    batches = 0
    for prices, events in sim.warm_up(START, lambda t: DEFAULT_PRICES):
        quotes.update(prices)
        engine.apply_many(events)
        swap_times += [e.ts for e in events if isinstance(e, Swap)]
        batches += 1
    return Warm(world, sim, engine, swap_times, batches)


def test_history_covers_the_week_before_the_start(warm: Warm) -> None:
    assert warm.batches > 100  # generated batch by batch, not all at once
    assert min(warm.swap_times) < START - 6 * DAY
    assert max(warm.swap_times) <= START
    assert warm.swap_times == sorted(warm.swap_times)
    # Older history is thinner, never empty.
    for lo, hi in ((7 * DAY, DAY), (DAY, 4 * HOUR), (4 * HOUR, HOUR), (HOUR, 0)):
        assert any(START - lo <= t < START - hi for t in warm.swap_times), (lo, hi)


def test_every_window_is_full_at_the_start(warm: Warm) -> None:
    token_info = warm.world.busiest_token(14)
    token = warm.engine.token(14, token_info.address)
    assert token is not None
    windows = {w.win: w for w in warm.engine.token_metric(token, START).sts}
    vu = [windows[name].vu for name in ("1m", "5m", "1h", "4h", "24h")]
    txs = [windows[name].txs for name in ("1m", "5m", "1h", "4h", "24h")]
    assert all(v is not None and v > 0 for v in vu)
    assert vu == sorted(vu)
    assert len(set(vu)) == 5
    assert txs == sorted(txs)
    assert len(set(txs)) == 5
    for pool_info in warm.world.pools_of(14, token_info.address):
        pool = warm.engine.pool(14, pool_info.address)
        assert pool is not None
        metric = warm.engine.pool_metric(pool, START)
        volumes = [w.bvu + w.svu for w in (metric.m5, metric.h1, metric.h4, metric.h24, metric.d7)]
        assert volumes == sorted(volumes), volumes
        assert len(set(volumes)) == 5, volumes
        assert metric.d7.ut > metric.h24.ut


def test_holders_and_positions_come_from_the_history(warm: Warm) -> None:
    token_info = warm.world.busiest_token(14)
    metrics = warm.engine.holders.metrics(14, token_info.address, START)
    count = next(m for m in metrics if m.tp == "holder_count")
    assert count.hc > 50
    stats = warm.engine.holders.statistics()
    assert stats["positions"] > 1000


def test_the_live_stream_continues_from_the_start(warm: Warm) -> None:
    events = list(warm.sim.step(START + 60_000, DEFAULT_PRICES))
    swaps = [e for e in events if isinstance(e, Swap)]
    assert swaps
    assert all(START < e.ts <= START + 60_000 for e in swaps)
    # About four swaps a second at the full rate, arbitrage included.
    assert 60 < len(swaps) < 1200


def test_reference_prices_follow_the_market_history() -> None:
    past = ReferencePrices([1839])
    events: list[MarketEvent] = [
        PriceSeries(
            cid=1839,
            resolution_ms=HOUR,
            start_ts=0,
            closes=[600.0, 620.0],
            volumes_usd=[1.0, 1.0],
        ),
        PriceSeries(
            cid=1839,
            resolution_ms=300_000,
            start_ts=2 * HOUR,
            closes=[611.0, 612.0],
            volumes_usd=[1.0, 1.0],
        ),
        Trade(cid=1839, ts=2 * HOUR + 900_000, price=615.0, volume_usd=1.0),
        PriceSeries(cid=1, resolution_ms=HOUR, start_ts=0, closes=[1.0], volumes_usd=[1.0]),
    ]
    for event in events:
        past.observe(event)
    assert past.at(0) == {1839: 600.0}  # before the history: its first close
    assert past.at(HOUR) == {1839: 600.0}
    assert past.at(HOUR + HOUR // 2) == {1839: 610.0}  # between hourly closes
    assert past.at(2 * HOUR + 300_000) == {1839: 611.0}  # the finer series wins
    assert past.at(2 * HOUR + 750_000) == {1839: 613.5}  # from the last close to the trade
    assert past.at(3 * HOUR) == {1839: 615.0}
