"""The exchange source through ccxt, against Kraken's recorded traffic on a loopback server.

ccxt's own Kraken client loads the recorded markets and OHLCV over HTTP and
parses the recorded WebSocket trade frames, sent verbatim; nothing leaves
127.0.0.1. The clock is injected: a venue goes silent by moving it on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from tests.exchange_recordings import KRAKEN, frames, kraken_venue
from websockets.asyncio.client import connect

from cmcstream.engine.events import AssetListed, PriceSeries, Trade
from cmcstream.engine.market import MarketEngine
from cmcstream.engine.units import HOUR_MS
from cmcstream.sources.exchanges.loopback import RecordedVenue
from cmcstream.sources.exchanges.source import ExchangeSource, ohlcv_series
from cmcstream.sources.exchanges.venues import VenueRules

BTC = 1
# 2024-02-01 16:00 UTC: the close of the last recorded hourly bar.
NOW = 1_706_803_200_000
LIMIT_S = 20  # every wait on the loopback venue is bounded
NO_THROTTLE = {"enableRateLimit": False}  # a recording has no rate limit to respect


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def kraken() -> AsyncIterator[RecordedVenue]:
    venue = kraken_venue()
    await venue.start()
    try:
        yield venue
    finally:
        await venue.aclose()


def kraken_source(venue: RecordedVenue, clock: Clock, **kwargs: object) -> ExchangeSource:
    urls = {"kraken": {"public": venue.http_url, "ws.publicV2": venue.ws_url}}
    return ExchangeSource(
        ["kraken"],
        ["BTC"],
        ["USDT"],
        urls=urls,
        clock=clock,
        client_config=NO_THROTTLE,
        **kwargs,  # type: ignore[arg-type]
    )


def recorded_trades() -> list[tuple[float, float]]:
    """(price, quantity) of every trade in the recorded frames, read from the frames."""
    out = []
    for frame in frames(KRAKEN / "ws-trade.jsonl"):
        out += [(t["price"], t["qty"]) for t in json.loads(frame)["data"]]
    return out


async def test_recorded_trades_become_one_vwap_print(kraken: RecordedVenue) -> None:
    clock = Clock(NOW)
    source = kraken_source(kraken, clock)
    try:
        async with asyncio.timeout(LIMIT_S):
            await source.start()
            assert [(m.venue, m.symbol, m.cid) for m in source.markets] == [
                ("kraken", "BTC/USDT", BTC)
            ]
            await kraken.wait_subscribed()
            for frame in frames(KRAKEN / "ws-trade.jsonl"):
                assert await kraken.send(frame) == 1
            await source.wait_received(2)
    finally:
        await source.aclose()
    assert json.loads(kraken.subscriptions[0])["params"] == {
        "channel": "trade",
        "symbol": ["BTC/USDT"],
    }
    [trade] = source.step(NOW + 1000, {})
    trades = recorded_trades()
    usd = sum(p * q for p, q in trades)
    assert isinstance(trade, Trade)
    assert trade.price == pytest.approx(sum(p * p * q for p, q in trades) / usd, rel=1e-12)
    assert trade.volume_usd == pytest.approx(usd)
    assert trade.ts == NOW + 1000


async def test_a_venue_that_goes_silent_stops_printing(kraken: RecordedVenue) -> None:
    clock = Clock(NOW)
    source = kraken_source(kraken, clock, rules=VenueRules(window_ms=10_000, stale_ms=30_000))
    try:
        async with asyncio.timeout(LIMIT_S):
            await source.start()
            await kraken.wait_subscribed()
            await kraken.send(frames(KRAKEN / "ws-trade.jsonl")[0])
            await source.wait_received(1)
            assert source.book.live_venues(BTC, clock.now) == ["kraken"]
            clock.now += 31_000  # nothing more from Kraken
            assert source.book.live_venues(BTC, clock.now) == []
            assert list(source.step(clock.now, {})) == []  # no print from a silent venue
            await kraken.send(frames(KRAKEN / "ws-trade.jsonl")[1])
            await source.wait_received(2)
    finally:
        await source.aclose()
    [trade] = source.step(clock.now, {})
    assert trade.price == pytest.approx(73380.6, rel=1e-12)  # the fresh trade alone


async def test_history_from_the_recorded_ohlcv_gives_the_change_fields(
    kraken: RecordedVenue,
) -> None:
    source = kraken_source(kraken, Clock(NOW))
    try:
        async with asyncio.timeout(LIMIT_S):
            await source.start()
    finally:
        await source.aclose()
    events = list(source.backfill(NOW, {}))
    assert isinstance(events[0], AssetListed)
    assert events[0].cid == BTC
    [hourly] = [e for e in events if isinstance(e, PriceSeries)]
    assert hourly.resolution_ms == HOUR_MS
    assert "/0/public/OHLC" in kraken.requests
    engine = MarketEngine()
    for event in events:
        engine.apply(event)
    payload = engine.latest_price(BTC, NOW)
    assert payload is not None
    assert payload.p == pytest.approx(42548.5)  # the last recorded close
    # 24 h before: inside the recorded gap, where the last close before it holds.
    assert payload.p24h == pytest.approx((42548.5 / 43539.7 - 1) * 100, abs=1e-6)
    assert payload.p7d is None  # two days of history say nothing about a week


def test_ohlcv_rows_become_one_gap_free_series() -> None:
    body = json.loads((KRAKEN / "OHLC-XBTUSDT-60.json").read_text())
    rows = [  # as ccxt parses Kraken's rows: ms, open, high, low, close, volume
        [r[0] * 1000, float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[6])]
        for r in body["result"]["XBTUSDT"]
    ]
    series = ohlcv_series(BTC, HOUR_MS, rows, 1.0, NOW)
    assert series is not None
    assert series.start_ts == 1_706_626_800_000
    assert len(series.closes) == len(series.volumes_usd) == 49  # 6 bars and the 43 h gap
    assert series.closes[5:48] == [43539.7] * 43
    assert series.volumes_usd[5:48] == [0.0] * 43
    assert series.volumes_usd[0] == pytest.approx(43361.1 * 18.75430110)
    assert ohlcv_series(BTC, HOUR_MS, rows, 1.0, rows[0][0]) is None  # nothing before then


async def test_an_unknown_symbol_on_every_venue_fails_the_start(kraken: RecordedVenue) -> None:
    urls = {"kraken": {"public": kraken.http_url, "ws.publicV2": kraken.ws_url}}
    source = ExchangeSource(
        ["kraken"], ["ETH"], ["USDT"], urls=urls, clock=Clock(NOW), client_config=NO_THROTTLE
    )
    async with asyncio.timeout(LIMIT_S):
        with pytest.raises(ValueError, match="none of ETH trades against USDT on kraken"):
            await source.start()
    assert source.clients == {}  # closed on the way out


async def test_the_loopback_venue_answers_ccxt_keepalive_pings(kraken: RecordedVenue) -> None:
    async with asyncio.timeout(LIMIT_S), connect(kraken.ws_url) as ws:
        await ws.send('{"method":"ping","req_id":7}')
        pong = json.loads(await ws.recv())
    assert pong["method"] == "pong"
    assert pong["req_id"] == 7
    assert kraken.subscriptions == []  # a ping is not a subscription
