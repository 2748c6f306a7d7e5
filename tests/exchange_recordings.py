"""The recorded exchange traffic of ``tests/data/exchanges`` (provenance in its README)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cmcstream.sources.exchanges.loopback import Answer

DATA = Path(__file__).resolve().parent / "data" / "exchanges"
KRAKEN = DATA / "kraken"

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
