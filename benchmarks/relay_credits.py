"""Credits a relay saves: 1,000 local clients on 100 topics, behind one upstream key.

An upstream cmcstream server and a relay (``serve --source relay``) run in this
process on 127.0.0.1. The local clients (ten per local key, the plan's
connection limit) each subscribe ``--per-client`` of the ``--topics`` market
topics, drawn with a fixed seed so that every topic is taken, and read their
pushes for ``--seconds``. Then, per billing model, it compares:

- what the upstream server charged the relay's key (its own ledger),
- what the relay reckons it spent upstream (``/health``, ``relay.credits``),
- what the local gateway charged the local keys,

and the share saved, ``1 - upstream / local``. Writes JSON to
``benchmarks/results/relay-credits-<time>.json``; ``--compare FILE`` prints
the figures of an earlier run beside these.

    python benchmarks/relay_credits.py [--clients 1000] [--topics 100] [--seconds 20]
    python benchmarks/relay_credits.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from cmcstream.config import ServerConfig
from cmcstream.protocol.billing import BillingModel, make_meter
from cmcstream.relay import Relay
from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStore
from cmcstream.sources.simulator.universe import Universe
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode

RESULTS = Path(__file__).parent / "results"
CHANNEL = "market@crypto_latest_price"
PER_KEY = 10  # connections a Startup key may hold
UNIVERSE = 600


def plan(clients: int, topics: int, per_client: int, seed: int) -> list[list[int]]:
    """The ids each client subscribes: every topic taken, the rest drawn at random."""
    ids = [asset.cid for asset in Universe.load(UNIVERSE, seed=0)][:topics]
    rng = random.Random(seed)
    picks = []
    for n in range(clients):
        first = ids[n % topics]  # round robin first, so no topic is left out
        rest = rng.sample([i for i in ids if i != first], min(per_client, topics) - 1)
        picks.append([first, *rest])
    return picks


async def client(url: str, key: str, ids: list[int], counts: list[int]) -> None:
    async with connect(url, additional_headers={HEADER: key}, compression=None) as ws:
        await ws.recv()  # welcome
        request = {
            "method": "subscribe",
            "id": 1,
            "channel": CHANNEL,
            "params": {"crypto_ids": ids},
        }
        await ws.send(json.dumps(request))
        await drain(ws, counts)


async def drain(ws: ClientConnection, counts: list[int]) -> None:
    async for frame in ws:
        if isinstance(frame, str) and frame.startswith('{"type":"data"'):
            counts[0] += 1


async def run_model(
    model: BillingModel, picks: list[list[int]], seconds: float, speed: float
) -> dict[str, Any]:
    config = ServerConfig(universe_size=UNIVERSE, dex_warm_up=False, billing=model, speed=speed)
    started = time.perf_counter()
    async with running_server(config) as upstream:

        def relay(cfg: ServerConfig, bus: Any) -> Relay:
            meter = make_meter(cfg.billing, cfg.credit_rate)
            return Relay(bus, upstream.url, upstream.demo_key, meter=meter)

        store = KeyStore(":memory:")
        try:
            async with running_server(config, store=store, feed=relay) as local:
                keys = [store.create(plan="startup").key for _ in range(-(-len(picks) // PER_KEY))]
                counts = [0]
                tasks = [
                    asyncio.ensure_future(client(local.url, keys[n // PER_KEY], ids, counts))
                    for n, ids in enumerate(picks)
                ]
                connected = time.perf_counter()
                await asyncio.sleep(seconds)
                for task in tasks:
                    task.cancel()
                failed = 0
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        try:
                            await task
                        except Exception:
                            failed += 1
                result = figures(model, upstream, local, counts[0], failed)
                result["local_subscriptions"] = sum(map(len, picks))
        finally:
            store.close()
    result["seconds"] = seconds
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["setup_s"] = round(connected - started, 1)
    return result


def figures(
    model: BillingModel, upstream: RunningNode, local: RunningNode, received: int, failed: int
) -> dict[str, Any]:
    reckoned = local.health()["relay"]
    up = upstream.health()["credits_charged"]
    down = local.health()["credits_charged"]
    return {
        "model": model.value,
        "upstream_topics": upstream.hub.topic_count,
        "upstream_connections": sum(map(len, upstream.connections.values())),
        "upstream_pushes": reckoned["pushes"],
        "local_pushes_received": received,
        "clients_failed": failed,
        "credits_upstream": up,
        "credits_upstream_reckoned": reckoned["credits"]["upstream"],
        "credits_local": down,
        "saved": round(1 - up / down, 4) if down else 0.0,
    }


def show(result: dict[str, Any], reference: dict[str, Any] | None) -> None:
    print(
        f"{result['clients']} clients x {result['per_client']} of {result['topics']} topics,"
        f" {result['runs'][0]['seconds']} s each"
    )
    before = {r["model"]: r for r in (reference or {}).get("runs", [])}
    for run in result["runs"]:
        line = (
            f"  {run['model']:>16}: upstream {run['credits_upstream']:>10,.3f} credits"
            f" ({run['upstream_topics']} topics, {run['upstream_pushes']} pushes)"
            f"  local {run['credits_local']:>10,.3f} ({run['local_pushes_received']} pushes)"
            f"  saved {100 * run['saved']:.1f} %"
        )
        old = before.get(run["model"])
        if old is not None:
            line += f"  (reference: saved {100 * old['saved']:.1f} %)"
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=1.0, help="market cadence speed-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="100 clients, 20 topics, 2 s")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier result file")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.topics, args.per_client, args.seconds, args.speed = 100, 20, 5, 2, 10
    picks = plan(args.clients, args.topics, args.per_client, args.seed)
    runs = [await run_model(model, picks, args.seconds, args.speed) for model in BillingModel]
    result = {
        "mode": "quick" if args.quick else "full",
        "clients": args.clients,
        "topics": args.topics,
        "per_client": args.per_client,
        "speed": args.speed,
        "runs": runs,
    }
    reference = json.loads(args.compare.read_text()) if args.compare is not None else None
    show(result, reference)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("relay-credits-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    asyncio.run(main())
