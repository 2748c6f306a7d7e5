"""What the gateway waits for from its key store: SQLite against PostgreSQL.

Through each store's async face, as the gateway calls it:

- admit: ``--clients`` concurrent connects, each reading its key and this
  month's usage (what admission awaits), ``--connects`` in all: connects/s and
  the p50/p99 of one connect's reads;
- flush: one usage write of ``--keys`` keys (what the usage loop writes every
  second), repeated: p50/max ms per write;
- stall: the longest the event loop went without running while those ran;
- storm: a gateway on the store (``running_server``) takes ``--storm``
  connections ``--parallel`` at a time, each until ``welcome``, from clients
  in the same process (so the figure is lower than ``run.py``'s storm, which
  runs its clients apart; it is the ratio between the stores that counts).

The stores run in turns (SQLite, PostgreSQL, SQLite, …) so both see the same
machine load. PostgreSQL is ``--postgres`` (a fresh schema, dropped at the
end). Prints a table and writes JSON to ``benchmarks/results/keystore-<time>.json``.

    python benchmarks/keystore.py [--postgres postgresql://127.0.0.1/test] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from websockets.asyncio.client import ClientConnection, connect

from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStore
from cmcstream.server.keystore_pg import PostgresKeyStore
from cmcstream.server.store import AsyncStore, Store
from cmcstream.testing import running_server

RESULTS = Path(__file__).parent / "results"
MONTH = "2026-12"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def stall_while(work: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``work()`` and the longest gap between 5 ms ticks of the loop meanwhile."""
    loop = asyncio.get_running_loop()
    done = False
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        last = loop.time()
        while not done:
            await asyncio.sleep(0.005)
            now = loop.time()
            worst = max(worst, now - last - 0.005)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        result = await work()
    finally:
        done = True
        await tick
    return result, worst


async def measure(store: Store, keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    aio: AsyncStore = store.open_async()
    try:
        await aio.usage(keys[0], MONTH)  # the pool is open before the clock starts
        latencies: list[float] = []

        async def client(n: int) -> None:
            for i in range(n, args.connects, args.clients):
                key = keys[i % len(keys)]
                started = time.perf_counter()
                record = await aio.get(key)
                assert record is not None
                await aio.usage(key, MONTH)
                latencies.append(time.perf_counter() - started)

        async def admit() -> float:
            started = time.perf_counter()
            await asyncio.gather(*(client(n) for n in range(args.clients)))
            return time.perf_counter() - started

        elapsed, admit_stall = await stall_while(admit)
        batch = {(MONTH, key): (25, 1) for key in keys[: args.keys]}
        writes: list[float] = []

        async def flush() -> None:
            for _ in range(args.flushes):
                started = time.perf_counter()
                await aio.add_usage(batch)
                writes.append(time.perf_counter() - started)

        _, flush_stall = await stall_while(flush)
    finally:
        await aio.aclose()
    return {
        "connects_per_s": round(args.connects / elapsed),
        "connect_p50_ms": round(1000 * quantile(latencies, 0.5), 2),
        "connect_p99_ms": round(1000 * quantile(latencies, 0.99), 2),
        "flush_p50_ms": round(1000 * quantile(writes, 0.5), 1),
        "flush_max_ms": round(1000 * max(writes), 1),
        "loop_stall_max_ms": round(1000 * max(admit_stall, flush_stall), 1),
    }


async def storm(store: Store, keys: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Connections per second a gateway on ``store`` admits, until ``welcome``."""
    async with running_server(store=store, universe_size=200) as node:
        slots = asyncio.Semaphore(args.parallel)
        opened: list[ClientConnection] = []

        async def one(n: int) -> None:
            async with slots:
                # Ten connections per key: the plan's limit.
                ws = await connect(node.url, additional_headers={HEADER: keys[n // 10]})
                opened.append(ws)
                await ws.recv()

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(args.storm)))
        elapsed = time.perf_counter() - started
        await asyncio.gather(*(ws.close() for ws in opened))
    return {"storm_conn_per_s": round(args.storm / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--flushes", type=int, default=10)
    parser.add_argument("--storm", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()

    schema = f"cmcstream_bench_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in args.postgres else "?"
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, Store] = {
            "sqlite": KeyStore(Path(tmp) / "keys.db"),
            "postgresql": PostgresKeyStore(f"{args.postgres}{separator}schema={schema}"),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
        try:
            needed = max(args.keys, args.storm // 10 + 1)
            keys = {
                name: [store.create(plan="professional").key for _ in range(needed)]
                for name, store in stores.items()
            }
            for _ in range(args.rounds):
                for name, store in stores.items():
                    run = asyncio.run(measure(store, keys[name], args))
                    run.update(asyncio.run(storm(store, keys[name], args)))
                    runs[name].append(run)
        finally:
            for store in stores.values():
                store.close()
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    summary = {
        name: {field: statistics.median(run[field] for run in found) for field in found[0]}
        for name, found in runs.items()
    }
    fields = list(summary["sqlite"])
    print(f"{'':12}" + "".join(f"{field:>20}" for field in fields))
    for name, row in summary.items():
        print(f"{name:12}" + "".join(f"{row[field]:>20}" for field in fields))
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {k: v for k, v in vars(args).items() if k not in ("out_dir", "postgres")},
        "median_of_rounds": summary,
        "runs": runs,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("keystore-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
