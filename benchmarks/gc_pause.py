"""How long the server's garbage collections take with many connections open.

Starts the server as ``cmcstream serve`` runs it (collector tuned, start-up heap
frozen; the same launcher as ``handshake_memory.py``), opens ``--conns``
WebSocket connections with the fan-out benchmark's load generator, and has the
server time, on its own event loop, a collection of the middle generation as
it stands and then ``full`` collections: first with the connections idle
(welcomed, nothing subscribed), then again once each has subscribed to
``--ids`` market ids; then it times every collection the server runs by itself
over ``--window`` seconds of pushes. These are the pauses :class:`cmcstream.heap.Collector`
adds. Loopback only. Prints them and writes
``benchmarks/results/gc-pause-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cmcstream.sources.simulator.universe import Universe
from fanout import procs
from run import make_keys

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: the same market every run


async def reply_of(child: procs.Child, within_s: float, prefix: str = "REPLY ") -> dict[str, Any]:
    while True:
        line = await child.line(within_s)
        if line.startswith(prefix):
            reply: dict[str, Any] = json.loads(line[len(prefix) :])
            return reply
        if line.startswith("{"):
            event: dict[str, Any] = json.loads(line)
            return event


async def ask(child: procs.Child, command: str, within_s: float = 120) -> dict[str, Any]:
    await child.send(command)
    return await reply_of(child, within_s)


def show(label: str, pauses: dict[str, Any]) -> None:
    full = pauses["full_ms"]
    print(
        f"  {label:12} {pauses['tracked']:9d} tracked objects,"
        f" RSS {pauses['rss_kib'] / 1024:7.1f} MiB:"
        f" middle {pauses['middle_ms']:6.1f} ms,"
        f" full median {statistics.median(full):6.1f} ms (max {max(full):6.1f}),"
        f" young after full {pauses['young_after_full_ms']:5.2f} ms",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {"settings": {"conns": args.conns, "ids": args.ids}}
    with tempfile.TemporaryDirectory() as tmp:
        db, keys_file = Path(tmp) / "keys.db", Path(tmp) / "keys.txt"
        per_key = make_keys(db, keys_file, args.conns)
        pinned = procs.can_pin()
        server_argv = [sys.executable, str(HERE / "handshake_memory.py"), "--serve"]
        server_argv += ["--db", str(db), "--start", str(START_MS)]
        children: list[procs.Child] = []
        try:
            server = await procs.spawn("server", server_argv, cpu=0 if pinned else None, stdin=True)
            children.append(server)
            line = await server.line(120)
            while not line.startswith("PORT "):
                line = await server.line(120)
            port = int(line.split()[1])
            results["empty"] = await ask(server, "pauses")
            show("no conns", results["empty"])
            ids = [asset.cid for asset in Universe.load(5000, seed=0).assets[:500]]
            plan = {
                "host": "127.0.0.1",
                "port": port,
                "path": "/v1",
                "keys_file": str(keys_file),
                "conns_per_key": per_key,
                "conns": args.conns,
                "parallel": 256,
                "connect_timeout": 60.0,
                "start_ms": START_MS,
                "speed": 1.0,
                "parse_every": 1_000_000,
                "subscribe": {
                    "kind": "market",
                    "ids": ids,
                    "ids_per_conn": args.ids,
                    "seed": random.randrange(1 << 30),
                },
            }
            loadgen_argv = [sys.executable, str(HERE / "fanout" / "loadgen.py"), json.dumps(plan)]
            loadgen = await procs.spawn(
                "loadgen", loadgen_argv, cpu=1 if pinned else None, stdin=True
            )
            children.append(loadgen)
            connected = await reply_of(loadgen, 60 + args.conns / 50)
            print(
                f"  opened {connected.get('opened')} connections ({connected.get('failed')} failed)"
            )
            results["connected"] = {k: connected.get(k) for k in ("opened", "failed", "secs")}
            await asyncio.sleep(2.0)
            results["idle"] = await ask(server, "pauses")
            show("idle", results["idle"])
            if args.ids:
                await loadgen.send(json.dumps({"cmd": "subscribe", "timeout": 120}))
                subscribed = await reply_of(loadgen, 150)
                print(f"  subscribed: {subscribed.get('acked')} acked")
                await asyncio.sleep(2.0)
                results["subscribed"] = await ask(server, "pauses")
                show(f"{args.ids} ids each", results["subscribed"])
                # The collections the server runs on its own while it pushes.
                await ask(server, "stats")
                await asyncio.sleep(args.window)
                window = (await ask(server, "stats"))["pauses"]
                results["fanout_window"] = {"seconds": args.window, "pauses": window}
                print(
                    f"  pushing for {args.window:g} s: collections (count/longest ms)"
                    + "".join(
                        f" g{gen} {p['count']}/{p['max_ms']:.1f}" for gen, p in window.items()
                    )
                )
            await loadgen.send(json.dumps({"cmd": "quit"}))
            await server.send("stop")
        finally:
            for child in children:
                await child.stop()
            procs.kill_all()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"gc-pause-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--ids", type=int, default=100, help="market ids per connection (0: none)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of pushes timed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
