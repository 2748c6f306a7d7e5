"""cmcstream's server for the scenarios that need settings ``cmcstream serve`` has no flag for.

The same :class:`~cmcstream.app.App` that ``cmcstream serve`` runs, built
from a :class:`~cmcstream.config.ServerConfig` with two fields the command line
does not expose: ``dex_activity`` (the on-chain swap storm) and the slow-consumer
``slow_timeout_s`` (so the slow-reader scenario sees its 1011 closes in
seconds); and ``--bus redis://…``, with which the feed and the gateway of
this one process talk through Redis (each with its own bus, under a fresh key
prefix), as a feed and a gateway in two processes would. It prints the same
two banner lines as ``serve``, and on SIGUSR1 one
``STATS {json}`` line with the node's own counters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

from cmcstream.app import App
from cmcstream.config import ServerConfig, WriterPolicy
from cmcstream.server.keystore import KeyStore


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--start", type=int, default=None)
    parser.add_argument("--universe-size", type=int, default=5000)
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    parser.add_argument("--dex-activity", type=float, default=1.0)
    parser.add_argument("--slow-timeout", type=float, default=WriterPolicy().slow_timeout_s)
    parser.add_argument("--bus", default="memory", help="memory (the default) or redis://…")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false")
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    config = ServerConfig(
        port=args.port,
        db=str(args.db),
        seed=args.seed,
        speed=args.speed,
        start_ms=args.start,
        universe_size=args.universe_size,
        idle_timeout_s=args.idle_timeout,
        dex_activity=args.dex_activity,
        writer=WriterPolicy(slow_timeout_s=args.slow_timeout),
        metrics=args.metrics,
    )
    store = KeyStore(config.store_location)
    feed: App | None = None
    if args.bus == "memory":
        node = App(config, store)
    else:
        from cmcstream.bus.redis import RedisBus

        prefix = f"cmcstream-bench:{uuid.uuid4().hex}"
        feed = App(config, bus=RedisBus(args.bus, prefix=prefix), gateway=False)
        node = App(config, store, bus=RedisBus(args.bus, prefix=prefix), feed=False)
    try:
        if feed is not None:
            await feed.start()
        await node.start()
        print(f"cmcstream (benchmark launcher) listening on {node.url}")
        print("Press Ctrl-C to stop.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        gateway = node.gateway
        assert gateway is not None

        def stats() -> None:
            conns = [conn for group in gateway.connections.values() for conn in group]
            counters = {
                "slow_closed": gateway.slow_closed,
                "slow_now": sum(1 for conn in conns if conn.outbox.slow_since is not None),
                "pushes": gateway.hub.pushes,
                "frames_built": gateway.hub.frames_built,
                "connections": len(conns),
            }
            sys.stdout.write("STATS " + json.dumps(counters) + "\n")
            sys.stdout.flush()

        loop.add_signal_handler(signal.SIGUSR1, stats)
        await node.serve_until(stop)
        if feed is not None:
            await feed.shutdown()
            # What a deployment keeps between runs (its change counter) goes with this one.
            import redis

            client = redis.Redis.from_url(args.bus)
            try:
                keys = list(client.scan_iter(match=f"{prefix}:*"))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
    finally:
        store.close()


if __name__ == "__main__":
    asyncio.run(serve(parse_args()))
