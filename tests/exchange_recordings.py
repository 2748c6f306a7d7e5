"""The recorded exchange traffic of ``tests/data/exchanges`` (provenance in its README)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from cmcstream.sources.exchanges.loopback import Answer, RecordedVenue

DATA = Path(__file__).resolve().parent / "data" / "exchanges"
KRAKEN = DATA / "kraken"
BINANCE = DATA / "binance"

# ccxt settings for the recorded Binance: spot markets only (the recording has no
# futures endpoints), and the aggregate-trade stream the recorded frame is from.
BINANCE_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "watchTrades": {"name": "aggTrade"},
    "watchTradesForSymbols": {"name": "aggTrade"},
}

EMPTY_RESULT = b'{"error":[],"result":{}}'


def frames(path: Path) -> list[str]:
    """The WebSocket frames of a ``.jsonl`` recording, one per line, verbatim."""
    return [line for line in path.read_text().splitlines() if line.strip()]


def kraken_answer(ohlc_interval: str = "60") -> Answer:
    """Kraken's REST API as recorded: the pairs, and the OHLC of one interval (the others
    empty, as for a pair with no bars there)."""
    pairs = (KRAKEN / "AssetPairs.json").read_bytes()
    ohlc = (KRAKEN / f"OHLC-XBTUSDT-{ohlc_interval}.json").read_bytes()
    no_bars = b'{"error":[],"result":{"XBTUSDT":[],"last":0}}'

    def answer(path: str, query: Mapping[str, str]) -> bytes | None:
        if path == "/0/public/AssetPairs":
            return pairs
        if path == "/0/public/Assets":
            return EMPTY_RESULT
        if path == "/0/public/OHLC":
            return ohlc if query.get("interval") == ohlc_interval else no_bars
        return None

    return answer


def kraken_pong(message: str) -> str | None:
    """Kraken's answer to a WebSocket v2 ``ping`` (ccxt drops a venue that stops answering)."""
    request = json.loads(message)
    if request.get("method") != "ping":
        return None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {"method": "pong", "req_id": request.get("req_id"), "time_in": now, "time_out": now}
    )


def kraken_venue() -> RecordedVenue:
    """A loopback Kraken: the recorded REST answers, and pongs to pings."""
    return RecordedVenue(kraken_answer(), kraken_pong)


def binance_answer() -> Answer:
    """Binance's REST API as recorded: the spot exchange info; no klines."""
    info = (BINANCE / "exchangeInfo.json").read_bytes()

    def answer(path: str, query: Mapping[str, str]) -> bytes | None:
        if path == "/api/v3/exchangeInfo":
            return info
        if path == "/api/v3/klines":
            return b"[]"
        return None

    return answer


def binance_venue() -> RecordedVenue:
    """A loopback Binance (WebSocket pings are the protocol's own, answered by websockets)."""
    return RecordedVenue(binance_answer())


def venue_urls(kraken: RecordedVenue, binance: RecordedVenue) -> dict[str, dict[str, str]]:
    """``--exchange-url`` overrides pointing ccxt at the two loopback venues."""
    return {
        "kraken": {"public": kraken.http_url, "ws.publicV2": kraken.ws_url},
        # ccxt tells Binance's spot streams by "/stream" in their URL.
        "binance": {"public": f"{binance.http_url}/api/v3", "ws.spot": f"{binance.ws_url}/stream"},
    }
