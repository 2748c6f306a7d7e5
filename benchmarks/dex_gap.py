"""How far apart a meme's pools price it: the cross-pool gap, over a long seeded run.

The DEX world runs for ``--hours`` simulated hours through
:class:`~cmcstream.engine.onchain.OnchainEngine`, with the market prices of the
quote coins moving as a seeded random walk (60 % a year, as a major coin
moves). Every simulated second, for every meme with two or more pools, the
gap is ``max(p) / min(p) − 1`` over the USD prices the engine gives its pools
(``pool_price``, what ``token_agg_event.p`` carries). A swap in one pool moves
only that pool; arbitrage bots trade the pools back together.

Prints the share of samples more than 1 % and 5 % apart and the p50/p90/p99
gap, overall and per chain, and writes JSON to
``benchmarks/results/dex-gap-<time>.json``. Deterministic for a seed: run it
against another checkout with ``PYTHONPATH=<that checkout>/src``.

    python benchmarks/dex_gap.py [--seed 7] [--hours 24]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from cmcstream.engine.onchain import OnchainEngine
from cmcstream.sources.simulator.dex import DEFAULT_PRICES, DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld

RESULTS = Path(__file__).parent / "results"
START_MS = 1_778_659_200_000
SIGMA_PER_S = 0.6 / math.sqrt(365.25 * 86_400)
STABLES = (825, 3408, 4943)


def summary(gaps: list[float]) -> dict[str, float]:
    gaps = sorted(gaps)
    n = len(gaps)
    if not n:
        return {"samples": 0}

    def q(f: float) -> float:
        return round(100 * gaps[min(n - 1, int(f * n))], 3)

    return {
        "samples": n,
        "over_1pct": round(sum(g > 0.01 for g in gaps) / n, 4),
        "over_5pct": round(sum(g > 0.05 for g in gaps) / n, 4),
        "p50_pct": q(0.5),
        "p90_pct": q(0.9),
        "p99_pct": q(0.99),
    }


def run(seed: int, hours: float) -> dict[str, Any]:
    world = DexWorld.build(seed)
    simulator = DexSimulator(world, seed=seed)
    prices = dict(DEFAULT_PRICES)
    engine = OnchainEngine(prices.get)
    walk = random.Random(f"dex-gap:{seed}")
    engine.apply_many(simulator.genesis(START_MS, prices))
    memes = [t for t in world.tokens if t.cmc_id is None]
    gaps: dict[int, list[float]] = {chain: [] for chain in world.chains}
    started = time.perf_counter()
    for second in range(1, int(hours * 3600) + 1):
        for cid in prices:
            if cid not in STABLES:
                prices[cid] *= math.exp(SIGMA_PER_S * walk.gauss(0.0, 1.0))
        now = START_MS + 1000 * second
        engine.apply_many(simulator.step(now, prices))
        engine.advance(now)
        for meme in memes:
            token = engine.token(meme.chain, meme.address)
            assert token is not None
            live = [p for p in token.pools if simulator.is_active(meme.chain, p.address)]
            if len(live) < 2:
                continue
            quoted = [engine.pool_price(p, token) for p in live]
            known = [p for p in quoted if p is not None and p > 0]
            if len(known) > 1:
                gaps[meme.chain].append(max(known) / min(known) - 1.0)
    return {
        "seed": seed,
        "hours": hours,
        "swaps": engine.swaps,
        "seconds": round(time.perf_counter() - started, 1),
        "all": summary([g for chain in gaps.values() for g in chain]),
        "chains": {str(chain): summary(g) for chain, g in gaps.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.seed, args.hours)
    print(f"seed {result['seed']}, {result['hours']} h, {result['swaps']} swaps")
    print(f"{'':>6} {'samples':>8} {'>1 %':>6} {'>5 %':>6} {'p50 %':>6} {'p90 %':>6} {'p99 %':>6}")
    for name, s in [("all", result["all"]), *result["chains"].items()]:
        if s["samples"]:
            print(
                f"{name:>6} {s['samples']:>8} {s['over_1pct']:>6.3f} {s['over_5pct']:>6.3f}"
                f" {s['p50_pct']:>6.2f} {s['p90_pct']:>6.2f} {s['p99_pct']:>6.2f}"
            )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("dex-gap-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
