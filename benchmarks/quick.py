"""A quick measure of a running server: connect-to-welcome time, idle memory, push rate.

Starts ``cmcstream serve`` as its own process on 127.0.0.1 with a fresh key store,
then, from this process:

1. opens ``--connections`` connections one after another and times each from
   TCP connect to the ``welcome`` frame;
2. reads the server's resident memory while they sit idle;
3. subscribes each to ``--ids`` ids from the top 500 and counts the pushes that
   arrive during ``--seconds``, with the server's clock at ``--speed``.

Prints the figures and writes them as JSON to ``benchmarks/results/quick-<time>.json``.
Loopback only; bounded in connections and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cmcstream.sources.simulator.universe import Universe

RESULTS = Path(__file__).parent / "results"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count(ws: ClientConnection, until: float, counter: list[int]) -> None:
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(ws.recv(), remaining)
        except (TimeoutError, ConnectionClosed):
            return
        counter[0] += 1


async def measure(
    args: argparse.Namespace, url: str, keys: list[str], pid: int
) -> dict[str, object]:
    idle_before = rss_kib(pid)
    welcome_ms: list[float] = []
    conns: list[ClientConnection] = []
    for i in range(args.connections):
        started = time.perf_counter()
        ws = await connect(
            url,
            additional_headers={"X-CMC_PRO_API_KEY": keys[i // 10]},
            compression=None,
            max_queue=None,
        )
        await ws.recv()
        welcome_ms.append((time.perf_counter() - started) * 1000)
        conns.append(ws)
        if i == 0:
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    idle_with = rss_kib(pid)
    # Ids the simulated market knows, from the top 500 (the 5 s cadence).
    top = [asset.cid for asset in Universe.load(args.universe_size).assets[:500]]
    ids = random.Random(1).sample(top, min(args.ids, len(top)))
    for n, ws in enumerate(conns):
        await ws.send(
            json.dumps(
                {
                    "id": n,
                    "method": "subscribe",
                    "channel": "market@crypto_latest_price",
                    "params": {"crypto_ids": ids},
                }
            )
        )
        await ws.recv()
    # Readers run from the first push; the window opens after a second of warm-up,
    # so it counts what arrives in it, not a backlog.
    counter = [0]
    readers = asyncio.gather(
        *(count(ws, time.monotonic() + args.seconds + 1.5, counter) for ws in conns)
    )
    await asyncio.sleep(1.0)
    cpu0, seen0, started = cpu_seconds(pid), counter[0], time.monotonic()
    await asyncio.sleep(args.seconds)
    elapsed = time.monotonic() - started
    received = counter[0] - seen0
    cpu = cpu_seconds(pid) - cpu0
    await readers
    await asyncio.gather(*(ws.close() for ws in conns))
    welcome_ms.sort()
    return {
        "connections": args.connections,
        "ids_per_connection": args.ids,
        "speed": args.speed,
        "universe_size": args.universe_size,
        "connect_to_welcome_ms_p50": round(statistics.median(welcome_ms), 3),
        "connect_to_welcome_ms_p99": round(welcome_ms[int(len(welcome_ms) * 0.99) - 1], 3),
        "server_rss_idle_mib": round(idle_before / 1024, 1),
        "server_rss_per_connection_kib": round((idle_with - idle_before) / len(conns), 1),
        "pushes_received": received,
        "pushes_per_second": round(received / elapsed),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--universe-size", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "keys.db")
        # Ten connections per key, as the plans allow.
        create = [sys.executable, "-m", "cmcstream", "keys", "create", "--db", db]
        keys = [
            subprocess.run(
                [*create, "--credits", "1e12"], capture_output=True, text=True, check=True
            ).stdout.strip()
            for _ in range((args.connections + 9) // 10)
        ]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cmcstream",
                "serve",
                "--port",
                "0",
                "--db",
                db,
                "--speed",
                str(args.speed),
                "--universe-size",
                str(args.universe_size),
                "--idle-timeout",
                "600",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert server.stdout is not None
            banner = ""
            for line in server.stdout:
                banner += line
                if line.startswith("Press Ctrl-C"):
                    break
            match = re.search(r"listening on (ws://\S+)", banner)
            if match is None:
                raise SystemExit(f"server did not start:\n{banner}")
            result = asyncio.run(measure(args, match.group(1), keys, server.pid))
        finally:
            server.terminate()
            server.wait(10)
    result["machine"] = f"{os.cpu_count()} cpu, {sys.version.split()[0]}"
    for name, value in result.items():
        print(f"{name:34} {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("quick-%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
