"""The market frames every server in a run pushes, built once from cmcstream's own code.

cmcstream's market engine, fed by its simulator exactly as ``cmcstream serve`` feeds
it, computes one ``market@crypto_latest_price`` payload per id of the top 500,
and cmcstream's codec encodes each into its final ``data`` frame. The peers get
these frames as templates (everything up to the envelope's ``ts``), so they push
the same JSON, the same sizes, for the same ids; only ``ts`` is theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cmcstream.config import ServerConfig
from cmcstream.engine.market import MarketEngine
from cmcstream.protocol import codec
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.market import MarketSimulator
from cmcstream.sources.simulator.universe import Universe

__all__ = ["MARKET_CHANNEL", "FrameSet", "build_frames", "busiest_token", "load_frames"]

MARKET_CHANNEL: Final = "market@crypto_latest_price"
_TS_KEY: Final = b',"ts":'


@dataclass(frozen=True)
class FrameSet:
    """Templates of the market frames of one run.

    Attributes:
        ids: the ids on the fast cadence (ranks 1–500), in rank order.
        heads: per id, the frame's text up to and including ``"ts":``;
            a server appends the send time and ``}``.
        cadence_ms: the fast cadence (simulated ms).
    """

    ids: list[int]
    heads: dict[int, str]
    cadence_ms: int

    def mean_frame_bytes(self) -> float:
        # + 13 digits of ts, "}", and the 4-byte frame header of a 126..65535-byte payload
        return sum(len(h) + 14 + 4 for h in self.heads.values()) / len(self.heads)

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "channel": MARKET_CHANNEL,
                    "cadence_ms": self.cadence_ms,
                    "ids": self.ids,
                    "heads": {str(cid): self.heads[cid] for cid in self.ids},
                }
            )
        )


def load_frames(path: Path) -> FrameSet:
    document = json.loads(path.read_text())
    return FrameSet(
        ids=[int(cid) for cid in document["ids"]],
        heads={int(cid): head for cid, head in document["heads"].items()},
        cadence_ms=int(document["cadence_ms"]),
    )


def build_frames(universe_size: int, seed: int, start_ms: int) -> FrameSet:
    """One tick of the top 500, as the server at ``seed`` and ``start_ms`` would push it."""
    config = ServerConfig(universe_size=universe_size, seed=seed, start_ms=start_ms)
    cadence = config.fast_cadence_ms
    universe = Universe.load(universe_size, seed=seed)
    simulator = MarketSimulator(universe, seed=seed, step_ms=cadence)
    engine = MarketEngine(
        fast_cadence_ms=cadence,
        slow_cadence_ms=config.slow_cadence_ms,
        fast_rank_max=config.fast_rank_max,
    )
    origin = start_ms - start_ms % cadence
    for event in simulator.backfill(origin):
        engine.apply(event)
    tick = origin + cadence
    for event in simulator.step(tick):
        engine.apply(event)
    ids = [asset.cid for asset in universe.assets[: config.fast_rank_max]]
    heads: dict[int, str] = {}
    for payload in engine.tick(tick, ids):
        prefix = codec.data_prefix(MARKET_CHANNEL, {"crypto_ids": payload.cid})
        frame = codec.encode_data(prefix, payload, tick)
        cut = frame.rindex(_TS_KEY) + len(_TS_KEY)
        heads[payload.cid] = frame[:cut].decode()
    missing = [cid for cid in ids if cid not in heads]
    if missing:
        raise RuntimeError(f"the engine pushed nothing for {len(missing)} top ids")
    return FrameSet(ids=ids, heads=heads, cadence_ms=cadence)


def busiest_token(seed: int, chain: int) -> tuple[str, str]:
    """Symbol and address of the busiest token of ``chain`` in the DEX world of ``seed``."""
    token = DexWorld.build(seed).busiest_token(chain)
    return token.symbol, token.address
