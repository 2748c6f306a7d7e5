"""Raw swap events per second through the whole on-chain engine, on one core.

A seeded swap storm is generated first (not timed), then replayed through
:class:`~cmcstream.engine.onchain.OnchainEngine` with every reducer running and
subscribers on every channel of the busiest BSC token: its transactions,
aggregate price, liquidity events, klines at all eight intervals, unique
traders at all eleven, token metric, holder metrics, the metrics of each of its
pools and the wallet updates of its tagged traders. Each push is also encoded
to JSON, as the server does once per topic. Time is simulated: the engine
advances one second at a time, as the node drives it.

Prints swaps/s and writes JSON to ``benchmarks/results/engine-swaps-<time>.json``.

    python benchmarks/engine_swaps.py [--swaps 200000] [--activity 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from cmcstream.engine.events import Swap
from cmcstream.engine.onchain import INTERVAL_MS, OnchainEngine
from cmcstream.protocol.channels import KLINE_INTERVALS, ChannelRegistry
from cmcstream.sources.simulator.dex import DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld

RESULTS = Path(__file__).parent / "results"
PRICES = {1839: 600.0, 1027: 3000.0, 5426: 150.0, 825: 1.0, 3408: 1.0, 4943: 1.0, 3717: 80_000.0}
START_MS = 1_789_999_200_000
CHAIN = 14


def generate(swaps: int, activity: float, seed: int) -> tuple[DexWorld, list[Any], list[list[Any]]]:
    """Genesis events and, per simulated second, the events of a storm of ``swaps`` swaps."""
    world = DexWorld.build(seed)
    simulator = DexSimulator(world, seed=seed, activity=activity)
    genesis = list(simulator.genesis(START_MS, PRICES))
    seconds: list[list[Any]] = []
    count = 0
    now = START_MS
    while count < swaps:
        now += 1000
        batch = list(simulator.step(now, PRICES))
        count += sum(1 for e in batch if isinstance(e, Swap))
        seconds.append(batch)
    return world, genesis, seconds


def subscribe_everything(engine: OnchainEngine, world: DexWorld) -> int:
    registry = ChannelRegistry()
    token = world.busiest_token(CHAIN).address
    requests: list[tuple[str, dict[str, Any]]] = [
        ("onchain@transaction", {"address": token}),
        ("onchain@token_agg_event", {"address": token}),
        ("onchain@liquidity_event", {"address": token}),
        ("onchain@token_metric", {"address": token}),
        ("onchain@holders_metrics", {"address": token}),
    ]
    requests += [("onchain@kline", {"address": token, "interval": i}) for i in KLINE_INTERVALS]
    requests += [("onchain@unique_trader", {"address": token, "interval": i}) for i in INTERVAL_MS]
    pools = [p.address for p in world.pools if p.chain == CHAIN and token in (p.token0, p.token1)]
    requests += [("onchain@pool_metric", {"pool_address": p}) for p in pools]
    wallets = [w.address for w in world.wallets if w.chain == CHAIN and w.tags][:20]
    requests += [("onchain@holder_wallet_update", {"wallet_address": w}) for w in wallets]
    count = 0
    for channel, params in requests:
        spec = registry.get(channel)
        assert spec is not None
        for sub in registry.normalize(spec, {"platform_id": CHAIN, **params}):
            engine.watch(sub, START_MS)
            count += 1
    return count


def run_once(world: DexWorld, genesis: list[Any], seconds: list[list[Any]]) -> dict[str, float]:
    engine = OnchainEngine(PRICES.get)
    for event in genesis:
        engine.apply(event)
    topics = subscribe_everything(engine, world)
    encode = msgspec.json.Encoder().encode
    pushes = 0
    now = START_MS
    started = time.process_time()
    for batch in seconds:
        now += 1000
        for event in batch:
            for _, payload in engine.apply(event):
                encode(payload)
                pushes += 1
        for _, payload in engine.advance(now):
            encode(payload)
            pushes += 1
    elapsed = time.process_time() - started
    swaps = engine.swaps
    return {
        "swaps": swaps,
        "events": sum(len(b) for b in seconds),
        "pushes": pushes,
        "topics": topics,
        "cpu_seconds": round(elapsed, 3),
        "swaps_per_second": round(swaps / elapsed),
        "simulated_seconds": len(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swaps", type=int, default=200_000)
    parser.add_argument("--activity", type=float, default=2000.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    t0 = time.perf_counter()
    world, genesis, seconds = generate(args.swaps, args.activity, args.seed)
    print(f"generated {sum(len(b) for b in seconds):,} events in {time.perf_counter() - t0:.1f} s")
    runs = [run_once(world, genesis, seconds) for _ in range(args.runs)]
    rates = [r["swaps_per_second"] for r in runs]
    result = {
        **runs[-1],
        "swaps_per_second_median": statistics.median(rates),
        "swaps_per_second_min": min(rates),
        "swaps_per_second_max": max(rates),
        "runs": args.runs,
        "python": sys.version.split()[0],
        "target_swaps_per_second": 50_000,
    }
    for name, value in result.items():
        print(f"{name:28} {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("engine-swaps-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
