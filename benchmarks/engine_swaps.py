"""Raw swap events per second through the whole on-chain engine, on one core.

A seeded swap storm is generated first (not timed), then replayed through
:class:`~cmcstream.engine.onchain.OnchainEngine` with every reducer running and
subscribers on every channel of the busiest BSC token: its transactions,
aggregate price, liquidity events, klines at all eight intervals, unique
traders at all eleven, token metric, holder metrics, the metrics of each of its
pools and the wallet updates of its tagged traders. Each push is also encoded
to JSON, as the server does once per topic. Time is simulated: the engine
advances one second at a time, as the node drives it, and the collector is
tuned as ``cmcstream serve`` tunes it.

Both builds of the engine run in the same invocation, each in a process of
its own pinned to one core, taking turns run by run so a change in the
machine's speed falls on both: the Python source (``interpreted``) and the
mypyc build of ``CMCSTREAM_COMPILE=1 pip install .`` (``compiled``, built
into ``benchmarks/.build`` on first use). Every run hashes what the engine
pushed (topic and JSON of each push, in order); the hashes of all runs must
agree, so the two builds are shown to stream the same bytes.

Prints swaps/s per build and writes JSON to
``benchmarks/results/engine-swaps-<time>.json``.

    python benchmarks/engine_swaps.py [--swaps 200000] [--runs 3] [--engine both]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
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
SOURCE = Path(__file__).resolve().parent.parent / "src"
PRICES = {1839: 600.0, 1027: 3000.0, 5426: 150.0, 825: 1.0, 3408: 1.0, 4943: 1.0, 3717: 80_000.0}
START_MS = 1_789_999_200_000
CHAIN = 14
ENGINES = ("interpreted", "compiled")
TARGET = 50_000
CHUNK = 64  # events per engine call, as cmcstream.server.node folds them


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


def run_once(world: DexWorld, genesis: list[Any], seconds: list[list[Any]]) -> dict[str, Any]:
    from cmcstream import heap

    engine = OnchainEngine(PRICES.get)
    for event in genesis:
        engine.apply(event)
    topics = subscribe_everything(engine, world)
    heap.settle()  # as the node does once its start-up state is built
    encode = msgspec.json.Encoder().encode
    sent: list[tuple[str, bytes]] = []
    push = sent.append
    now = START_MS
    started = time.process_time()
    for batch in seconds:
        now += 1000
        for start in range(0, len(batch), CHUNK):  # as the node folds a step's events
            for topic, payload in engine.apply_many(batch[start : start + CHUNK]):
                push((topic, encode(payload)))
        for topic, payload in engine.advance(now):
            push((topic, encode(payload)))
    elapsed = time.process_time() - started
    digest = hashlib.sha256()
    for topic, data in sent:
        digest.update(b"%s\0%s\n" % (topic.encode(), data))
    return {
        "swaps": engine.swaps,
        "events": sum(len(b) for b in seconds),
        "pushes": len(sent),
        "topics": topics,
        "cpu_seconds": round(elapsed, 3),
        "swaps_per_second": round(engine.swaps / elapsed),
        "simulated_seconds": len(seconds),
        "sha256": digest.hexdigest(),
    }


def child(engine: str, storm: Path) -> None:
    """One timed run on whichever build ``PYTHONPATH`` put first; prints its result as JSON."""
    from cmcstream.engine import build

    if build() != engine:
        raise SystemExit(f"asked for the {engine} engine, but {build()} was imported")
    with storm.open("rb") as f:
        world, genesis, seconds = pickle.load(f)
    print(json.dumps(run_once(world, genesis, seconds)))


def run_child(engine: str, storm: Path, tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", engine, "--storm", str(storm)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["swaps_per_second"] for r in runs]
    return {
        "swaps_per_second_median": statistics.median(rates),
        "swaps_per_second_min": min(rates),
        "swaps_per_second_max": max(rates),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swaps", type=int, default=200_000)
    parser.add_argument("--activity", type=float, default=2000.0)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=(*ENGINES, "both"), default="both")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--storm", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    if args.child:
        child(args.child, args.storm)
        return
    engines = ENGINES if args.engine == "both" else (args.engine,)
    trees = {"interpreted": SOURCE}
    if "compiled" in engines:
        from compiled_engine import build

        t0 = time.perf_counter()
        trees["compiled"] = build()
        print(f"compiled engine in {trees['compiled']} ({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    world, genesis, seconds = generate(args.swaps, args.activity, args.seed)
    print(f"generated {sum(len(b) for b in seconds):,} events in {time.perf_counter() - t0:.1f} s")
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    with tempfile.TemporaryDirectory() as scratch:
        storm = Path(scratch) / "storm.pickle"
        storm.write_bytes(pickle.dumps((world, genesis, seconds), pickle.HIGHEST_PROTOCOL))
        for _ in range(args.runs):  # builds take turns, so drift in machine speed hits both
            for engine in engines:
                run = run_child(engine, storm, trees[engine])
                runs[engine].append(run)
                print(f"  {engine:12} {run['swaps_per_second']:>9,} swaps/s")
    digests = {run["sha256"] for engine in engines for run in runs[engine]}
    identical = len(digests) == 1
    last = runs[engines[0]][-1]
    result: dict[str, Any] = {
        key: last[key] for key in ("swaps", "events", "pushes", "topics", "simulated_seconds")
    }
    result |= {
        "engines": {e: summary(runs[e]) for e in engines},
        "identical_output": identical,
        "sha256": sorted(digests),
        "python": sys.version.split()[0],
        "target_swaps_per_second": TARGET,
    }
    print(f"{'swaps':28} {result['swaps']:,}")
    print(f"{'events':28} {result['events']:,}")
    print(f"{'pushes':28} {result['pushes']:,} on {result['topics']} topics")
    for engine in engines:
        s = result["engines"][engine]
        print(
            f"{engine + ' swaps/s':28} {s['swaps_per_second_median']:,} median"
            f" ({s['swaps_per_second_min']:,}–{s['swaps_per_second_max']:,}),"
            f" target {TARGET:,}"
        )
    if len(engines) == 2:
        ratio = (
            result["engines"]["compiled"]["swaps_per_second_median"]
            / result["engines"]["interpreted"]["swaps_per_second_median"]
        )
        result["compiled_over_interpreted"] = round(ratio, 2)
        print(f"{'compiled / interpreted':28} {ratio:.2f}x")
    print(f"{'identical output':28} {'yes' if identical else 'NO'} ({len(digests)} digest(s))")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("engine-swaps-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")
    if not identical:
        raise SystemExit("the runs pushed different bytes")


if __name__ == "__main__":
    main()
