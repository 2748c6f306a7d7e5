"""A server whose market side is the exchange source, fed Kraken's recorded traffic.

A real client subscribes to ``market@crypto_latest_price`` and gets the VWAP of
the recorded trades that ccxt parsed from the loopback venue's frames.
"""

from __future__ import annotations

import asyncio
import json

from cmcstream.sources.exchanges.source import ExchangeSource
from cmcstream.testing import running_server
from tests.exchange_recordings import KRAKEN, frames, kraken_venue
from tests.server.conftest import dial, recv_json, request, welcomed

LIMIT_S = 20


async def test_a_client_gets_the_price_of_the_recorded_trades() -> None:
    venue = kraken_venue()
    await venue.start()
    source = ExchangeSource(
        ["kraken"],
        ["BTC"],
        ["USDT"],
        urls={"kraken": {"public": venue.http_url, "ws.publicV2": venue.ws_url}},
        client_config={"enableRateLimit": False},
    )
    recorded = frames(KRAKEN / "ws-trade.jsonl")
    trades = [(t["price"], t["qty"]) for f in recorded for t in json.loads(f)["data"]]
    vwap = sum(p * p * q for p, q in trades) / sum(p * q for p, q in trades)
    try:
        async with (
            asyncio.timeout(LIMIT_S),
            running_server(market=source, fast_cadence_ms=100, slow_cadence_ms=100) as node,
            dial(node.url, node.demo_key) as ws,
        ):
            await welcomed(ws)
            ack = await request(
                ws,
                {
                    "id": 1,
                    "method": "subscribe",
                    "channel": "market@crypto_latest_price",
                    "params": {"crypto_ids": [1]},
                },
            )
            assert ack["type"] == "ack", ack
            await venue.wait_subscribed()
            for frame in recorded:
                await venue.send(frame)
            await source.wait_received(len(trades))
            while True:
                push = await recv_json(ws)
                if push["type"] == "data" and abs(push["data"]["p"] / vwap - 1) < 1e-12:
                    break
            health = node.feed.health()
    finally:
        await venue.aclose()
    assert health["market"] == {
        "source": "exchanges",
        "markets": ["kraken:BTC/USDT"],
        "trades": len(trades),
        "outliers": 0,
    }
    assert "simulator" not in health
    data = push["data"]
    assert push["channel"] == "market@crypto_latest_price"
    assert data["cid"] == 1
    # The recorded history is from 2024: the last 24 h before the live trades are not
    # covered, so there is no honest 24 h volume yet.
    assert data["vu"] is None
    assert data["cs"] > 19_000_000  # supplies come from the bundled table
