"""Two venues through ccxt: Kraken's and Binance's recorded traffic, each from its own loopback.

The recorded Binance trade (2021, BTC at 58,942) and Kraken trades (2024, BTC at
73,3xx) are years apart, which makes Binance's an outlier against Kraken's price:
the rule sees real prices parsed by ccxt from real frames.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.exchange_recordings import (
    BINANCE,
    BINANCE_OPTIONS,
    KRAKEN,
    binance_venue,
    frames,
    kraken_venue,
    venue_urls,
)

from cmcstream.engine.events import PriceSeries
from cmcstream.sources.exchanges.loopback import RecordedVenue
from cmcstream.sources.exchanges.source import ExchangeSource
from cmcstream.sources.exchanges.venues import VenueRules

BTC = 1
NOW = 1_706_803_200_000
LIMIT_S = 20


@pytest.fixture
async def venues() -> AsyncIterator[tuple[RecordedVenue, RecordedVenue]]:
    kraken, binance = kraken_venue(), binance_venue()
    await kraken.start()
    await binance.start()
    try:
        yield kraken, binance
    finally:
        await kraken.aclose()
        await binance.aclose()


def two_venue_source(
    venues: tuple[RecordedVenue, RecordedVenue], rules: VenueRules
) -> ExchangeSource:
    return ExchangeSource(
        ["binance", "kraken"],
        ["BTC"],
        ["USDT"],
        rules=rules,
        urls=venue_urls(*venues),
        client_config={"enableRateLimit": False, "options": BINANCE_OPTIONS},
        clock=lambda: NOW,
    )


def usd_trades(path: Path) -> list[tuple[float, float]]:
    """(price, USD volume) of every trade of a recorded frame file, read from the frames."""
    out = []
    for frame in frames(path):
        message = json.loads(frame)
        if "data" in message and isinstance(message["data"], list):  # Kraken v2
            out += [(t["price"], t["price"] * t["qty"]) for t in message["data"]]
        else:  # Binance aggTrade
            t = message["data"]
            out.append((float(t["p"]), float(t["p"]) * float(t["q"])))
    return out


async def subscribed(source: ExchangeSource, venues: tuple[RecordedVenue, ...]) -> None:
    await source.start()
    for venue in venues:
        await venue.wait_subscribed()


async def test_the_price_weighs_both_venues_by_volume(
    venues: tuple[RecordedVenue, RecordedVenue],
) -> None:
    kraken, binance = venues
    source = two_venue_source(venues, VenueRules(max_deviation=0.5))  # years apart: keep both
    try:
        async with asyncio.timeout(LIMIT_S):
            await subscribed(source, venues)
            for frame in frames(KRAKEN / "ws-trade.jsonl"):
                await kraken.send(frame)
            await binance.send(frames(BINANCE / "ws-aggTrade.jsonl")[0])
            await source.wait_received(3)
    finally:
        await source.aclose()
    assert {m.venue for m in source.markets} == {"binance", "kraken"}
    assert json.loads(binance.subscriptions[0])["params"] == ["btcusdt@aggTrade"]
    trades = usd_trades(KRAKEN / "ws-trade.jsonl") + usd_trades(BINANCE / "ws-aggTrade.jsonl")
    [trade] = source.step(NOW, {})
    usd = sum(v for _, v in trades)
    assert trade.price == pytest.approx(sum(p * v for p, v in trades) / usd, rel=1e-12)
    assert trade.volume_usd == pytest.approx(usd)


async def test_a_venue_far_from_the_published_price_is_an_outlier(
    venues: tuple[RecordedVenue, RecordedVenue],
) -> None:
    kraken, binance = venues
    source = two_venue_source(venues, VenueRules(max_deviation=0.05))
    try:
        async with asyncio.timeout(LIMIT_S):
            await subscribed(source, venues)
            for frame in frames(KRAKEN / "ws-trade.jsonl"):
                await kraken.send(frame)
            await source.wait_received(2)
            [first] = source.step(NOW, {})
            await binance.send(frames(BINANCE / "ws-aggTrade.jsonl")[0])
            await source.wait_received(3)
            await kraken.send(frames(KRAKEN / "ws-trade.jsonl")[1])
            await source.wait_received(4)
    finally:
        await source.aclose()
    [second] = source.step(NOW + 1, {})
    kraken_trades = usd_trades(KRAKEN / "ws-trade.jsonl")
    kraken_trades.append(kraken_trades[1])
    usd = sum(v for _, v in kraken_trades)
    assert second.price == pytest.approx(sum(p * v for p, v in kraken_trades) / usd, rel=1e-12)
    assert abs(second.price / first.price - 1) < 0.001
    assert source.book.rejected == 1  # Binance's 58,942


async def test_history_comes_from_the_first_venue_that_has_it(
    venues: tuple[RecordedVenue, RecordedVenue],
) -> None:
    binance = venues[1]
    source = two_venue_source(venues, VenueRules())
    try:
        async with asyncio.timeout(LIMIT_S):
            await source.start()
    finally:
        await source.aclose()
    assert "/api/v3/klines" in binance.requests  # asked first, and it had no bars
    [hourly] = [e for e in source.backfill(NOW, {}) if isinstance(e, PriceSeries)]
    assert hourly.closes[-1] == 42548.5  # Kraken's last recorded close
