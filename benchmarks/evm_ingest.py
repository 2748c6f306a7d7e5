"""The EVM source on anvil: logs ingested and decoded per core, and head-to-push latency.

1. **Back-fill.** ``--actions`` seeded actions (swaps, adds, removes, transfers
   through the real Uniswap V2 and V3 routers and V3's position manager) are
   mined, then an :class:`EvmSource` back-fills them: wall time, this
   process's CPU time, logs per CPU second. Then the same logs are decoded
   again with no I/O (what decoding alone costs per core), all of them and
   the V3 pools' alone. Then the same for ``--v3-swaps`` swaps through the V3
   router alone (``v3_backfill``).
2. **Latency.** A server streams from the chain; a client on the same loop is
   subscribed to ``onchain@transaction`` of PEPE; swaps are sent one at a
   time, alternately through the V2 pair and the V3 pool. For each push:
   head-to-push (the ``newHeads`` notification to the client's receipt of
   the push) and mined-to-push (the sender's receipt of the transaction
   receipt to the push), per pool kind.

anvil runs on the same 2-core machine, so it competes with the measured
process for CPU. Writes ``benchmarks/results/evm-ingest-<time>.json``;
``--against`` an earlier result prints each figure's ratio to it.

    python benchmarks/evm_ingest.py [--actions 400] [--swaps 100] [--quick]
                                    [--against benchmarks/results/evm-ingest-….json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import websockets
from web3 import AsyncWeb3, WebSocketProvider

from cmcstream.bus.memory import MemoryBus
from cmcstream.config import ServerConfig
from cmcstream.feed import Feed
from cmcstream.protocol.handshake import API_KEY_HEADER
from cmcstream.server.keystore import KeyStore
from cmcstream.sources.evm.abi import V3_POOL
from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.decode import TOPICS, decode, topic_of
from cmcstream.sources.evm.devchain import DevChain
from cmcstream.sources.evm.source import EvmSource
from cmcstream.testing.server import RunningNode

RESULTS = Path(__file__).parent / "results"
V3_TOPICS = {topic_of(e) for e in V3_POOL if e["type"] == "event"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def backfill(
    anvil: Anvil, w3: Any, dex: DevChain, actions: int, v3_only: bool = False
) -> dict[str, Any]:
    start = await w3.eth.block_number + 1
    for i in range(actions):
        if v3_only:
            sold, bought = ("WETH", "PEPE") if i % 2 else ("PEPE", "WETH")
            await dex.swap_v3(dex.traders[i % 5], sold, bought, fraction=0.001, pool="PEPE/WETH")
        else:
            await dex.act()
    head = await w3.eth.block_number
    source = EvmSource(anvil.ws_url, 1, from_block=start)
    wall, cpu = time.perf_counter(), time.process_time()
    await source.start()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    events = len(list(source.backfill(0, {})))
    await source.aclose()
    logs = await w3.eth.get_logs({"fromBlock": start, "toBlock": head, "topics": [list(TOPICS)]})
    v3_logs = [log for log in logs if bytes(log["topics"][0]) in V3_TOPICS]
    return {
        "blocks": head + 1 - start,
        "logs": source.stats.logs,
        "events": events,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "logs_per_wall_s": round(source.stats.logs / wall),
        "logs_per_cpu_s": round(source.stats.logs / cpu),
        "decode_only_logs_per_cpu_s": decode_rate(logs),
        "v3_logs": len(v3_logs),
        "v3_decode_only_logs_per_cpu_s": decode_rate(v3_logs),
    }


def decode_rate(logs: list[Any], rounds: int = 5) -> int:
    """Logs decoded per CPU second, with no I/O."""
    cpu = time.process_time()
    for _ in range(rounds):
        for log in logs:
            decode(log)
    cpu = (time.process_time() - cpu) / rounds
    return round(len(logs) / cpu) if cpu > 0 else 0


async def latency(anvil: Anvil, dex: DevChain, swaps: int) -> dict[str, Any]:
    config = ServerConfig(universe_size=600, dex_warm_up=False, host="127.0.0.1", port=0)
    bus = MemoryBus()
    source = EvmSource(anvil.ws_url, 1, from_block=0)
    store = KeyStore(":memory:")
    node = RunningNode(config, store, bus=bus, feed=Feed(config, bus, dex=source))
    node.demo_key = store.create(plan="startup", name="bench").key
    await node.start()
    loop = asyncio.get_running_loop()
    head_to_push: dict[str, list[float]] = {"v2": [], "v3": []}
    mined_to_push: dict[str, list[float]] = {"v2": [], "v3": []}
    try:
        headers = {API_KEY_HEADER: node.demo_key}
        async with websockets.connect(node.url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            params = {"platform_id": 1, "address": [dex.tokens["PEPE"].address.lower()]}
            subscribe = {"id": 1, "method": "subscribe", "channel": "onchain@transaction"}
            await ws.send(json.dumps({**subscribe, "params": params}))
            assert json.loads(await ws.recv())["type"] == "ack"
            for i in range(swaps):
                kind = "v3" if i % 2 else "v2"
                who = dex.traders[i % 5]
                if kind == "v2":
                    sold, bought = ("USDC", "PEPE") if i % 4 else ("PEPE", "USDC")
                    await dex.swap(who, sold, bought, fraction=0.001, pair="PEPE/USDC")
                else:
                    sold, bought = ("WETH", "PEPE") if i % 4 == 1 else ("PEPE", "WETH")
                    await dex.swap_v3(who, sold, bought, fraction=0.001, pool="PEPE/WETH")
                mined = loop.time() * 1000.0
                push = json.loads(await asyncio.wait_for(ws.recv(), 10))
                got = loop.time() * 1000.0
                mined_to_push[kind].append(max(got - mined, 0.0))
                head = source.stats.head_ms.get(push["data"]["bh"])
                if head is not None:
                    head_to_push[kind].append(got - head)
    finally:
        await node.shutdown()
        store.close()

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p90_ms": round(pct(values, 0.9), 2),
            "p99_ms": round(pct(values, 0.99), 2),
            "max_ms": round(max(values), 2),
        }

    every = {"all": [*head_to_push["v2"], *head_to_push["v3"]], **head_to_push}
    return {
        "head_to_push": {k: stats(v) for k, v in every.items()},
        "mined_to_push": {k: stats(v) for k, v in mined_to_push.items()},
    }


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = value
    return out


def compare(result: dict[str, Any], reference: dict[str, Any]) -> None:
    """Each figure next to the reference's, with their ratio."""
    mine, theirs = flatten(result), flatten(reference)
    for key in sorted(mine.keys() & theirs.keys()):
        ratio = mine[key] / theirs[key] if theirs[key] else float("nan")
        print(f"  {key:<45} {mine[key]:>12} vs {theirs[key]:>12}  x{ratio:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=400)
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--v3-swaps", type=int, default=300, help="V3 swaps back-filled alone")
    parser.add_argument("--quick", action="store_true", help="40 actions, 10 swaps, 20 V3 swaps")
    parser.add_argument("--against", type=Path, help="an earlier result to compare with")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.actions, args.swaps, args.v3_swaps = 40, 10, 20
    result: dict[str, Any] = {
        "actions": args.actions,
        "swaps": args.swaps,
        "v3_swaps": args.v3_swaps,
    }
    with Anvil() as anvil:
        async with AsyncWeb3(WebSocketProvider(anvil.ws_url)) as w3:
            dex = await DevChain.deploy(w3, seed=3)
            result["backfill"] = await backfill(anvil, w3, dex, args.actions)
            result["v3_backfill"] = await backfill(anvil, w3, dex, args.v3_swaps, v3_only=True)
            result["latency"] = await latency(anvil, dex, args.swaps)
    print(json.dumps(result, indent=2))
    if args.against is not None:
        print(f"against {args.against}:")
        compare(result, json.loads(args.against.read_text()))
    args.out_dir.mkdir(exist_ok=True)
    out = args.out_dir / f"evm-ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    asyncio.run(main())
