"""``cmcstream serve --workers 2`` against ``--workers 1`` on this machine, in turns.

Each run starts a fresh ``cmcstream serve`` (the real command): ``--workers 1``
is today's single process over the in-process bus; ``--workers 2`` is a
supervisor, one feed process and two gateway processes sharing the port
through ``SO_REUSEPORT``, joined by Redis (127.0.0.1:6379 under a private
prefix). The fan-out load generator (``fanout/loadgen.py``) then opens
``--conns`` connections (the connect rate is the storm figure), subscribes each
to ``--ids`` ids of the top 500, lets the market run sped up so ticks follow
each other back to back, and counts the pushes delivered during ``--measure``
seconds. Nothing is pinned: the server's processes and the load generator share
every core of the machine, and the load generator's CPU is reported beside the
server's so the competition is visible.

Runs alternate (1, 2, 1, 2, …) so that other load on the machine falls on both.
Prints a table and writes ``results/workers-<UTC time>.json``. Loopback only;
every child is ended on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cmcstream.server.keystore import KeyStore
from cmcstream.sources.simulator.universe import Universe
from fanout import procs, procstat
from fanout.procs import Child, ChildFailed

RESULTS = Path(__file__).resolve().parent / "results"
HERE = Path(__file__).resolve().parent
REDIS = "redis://127.0.0.1:6379/0"
CONNS_PER_KEY = 10  # the startup plan's connection limit


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in turns")
    parser.add_argument("--conns", type=int, default=4000)
    parser.add_argument("--ids", type=int, default=100, help="ids per connection (top 500)")
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--universe-size", type=int, default=5000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--measure", type=float, default=8.0)
    parser.add_argument("--parse-every", type=int, default=16, help="loadgen parses 1 in N")
    parser.add_argument("--loadgens", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.conns, args.universe_size = 1, 100, 600
        args.warmup, args.measure = 0.5, 1.0
    return args


def tree_of(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return out


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += procstat.cpu_seconds(pid)
        except OSError:
            continue
    return total


async def start_server(
    workers: int, db: Path, args: argparse.Namespace, prefix: str
) -> tuple[Child, int]:
    argv = [
        sys.executable,
        "-m",
        "cmcstream",
        "serve",
        *("--port", "0", "--db", str(db), "--speed", repr(args.speed)),
        *("--universe-size", str(args.universe_size), "--idle-timeout", "600"),
        *("--start", "1778630400000"),
    ]
    if workers > 1:
        argv += ["--workers", str(workers), "--bus", REDIS, "--bus-prefix", prefix]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = await procs.spawn(f"serve-w{workers}", argv, cpu=None, env=env)
    port = None
    while True:
        line = await child.line(180.0)
        if "listening on ws://" in line:
            port = int(line.rsplit(":", 1)[1].split("/")[0])
        if line.startswith("Press Ctrl-C") and port is not None:
            return child, port


async def expect(children: list[Child], event: str, within_s: float) -> list[dict[str, Any]]:
    async def one(child: Child) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            reply = json.loads(await child.line(max(0.1, deadline - loop.time())))
            if reply.get("ev") == "error":
                raise ChildFailed(f"{child.name}: {reply['msg']}")
            if reply.get("ev") == event:
                return dict(reply)

    return list(await asyncio.gather(*(one(c) for c in children)))


async def command(
    children: list[Child], message: dict[str, Any], event: str, within_s: float
) -> list[dict[str, Any]]:
    for child in children:
        await child.send(json.dumps(message))
    return await expect(children, event, within_s)


async def one_run(
    workers: int, args: argparse.Namespace, work: Path, keys_file: Path, ids: list[int], n: int
) -> dict[str, Any]:
    db = work / f"keys-{n}.db"
    db.write_bytes((work / "keys.db").read_bytes())
    prefix = f"cmcstream-bench-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    server, port = await start_server(workers, db, args, prefix)
    ready_s = time.monotonic() - started
    loadgens: list[Child] = []
    try:
        server_pids = tree_of(server.pid)
        first = 0
        for g in range(args.loadgens):
            share = args.conns // args.loadgens + (1 if g < args.conns % args.loadgens else 0)
            plan = {
                "host": "127.0.0.1",
                "port": port,
                "path": "/v1",
                "keys_file": str(keys_file),
                "conns_per_key": CONNS_PER_KEY,
                "conns": share,
                "first_index": first,
                "parallel": max(1, 256 // args.loadgens),
                "connect_timeout": 30.0,
                "start_ms": 1778630400000,
                "speed": args.speed,
                "parse_every": args.parse_every,
                "subscribe": {
                    "kind": "market",
                    "ids": ids,
                    "ids_per_conn": args.ids,
                    "seed": 0,
                },
            }
            first += share
            argv = [sys.executable, str(HERE / "fanout" / "loadgen.py"), json.dumps(plan)]
            loadgens.append(await procs.spawn(f"loadgen{g}", argv, cpu=None, stdin=True))
        connected = await expect(loadgens, "connected", 120.0 + args.conns / 50)
        opened = sum(r["opened"] for r in connected)
        connect_s = max(r["secs"] for r in connected)
        subscribed = await command(
            loadgens, {"cmd": "subscribe", "timeout": 120.0}, "subscribed", 150.0
        )
        if any(r["failed"] for r in subscribed):
            raise ChildFailed(f"subscriptions failed: {subscribed[0]['failures']}")
        await asyncio.sleep(args.warmup)
        server_cpu0 = cpu_of(server_pids)
        loadgen_cpu0 = cpu_of([c.pid for c in loadgens])
        busy0, total0 = procstat.cpu_busy()
        window0 = time.monotonic()
        measured = await command(
            loadgens,
            {"cmd": "measure", "seconds": args.measure, "latency": False},
            "measured",
            args.measure + 60,
        )
        busy1, total1 = procstat.cpu_busy()
        # CPU over the harness's own window: the load generator's reply may come late.
        window = time.monotonic() - window0
        server_cpu = cpu_of(server_pids) - server_cpu0
        loadgen_cpu = cpu_of([c.pid for c in loadgens]) - loadgen_cpu0
        secs = max(r["secs"] for r in measured)
        pushes = sum(r["pushes"] for r in measured)
        return {
            "workers": workers,
            "server_processes": len(server_pids),
            "ready_s": round(ready_s, 2),
            "conns_opened": opened,
            "connect_failed": sum(r["failed"] for r in connected),
            "conn_per_s": opened / connect_s if connect_s > 0 else 0.0,
            "pushes_per_s": pushes / secs,
            "open_conns": sum(r["open_conns"] for r in measured),
            "server_cpu_cores": server_cpu / window,
            "loadgen_cpu_cores": loadgen_cpu / window,
            "measure_window_s": window,
            "machine_busy_pct": 100 * (busy1 - busy0) / (total1 - total0),
            "errors": [r["errors"] for r in measured if r["errors"]],
        }
    finally:
        for child in loadgens:
            if child.proc.returncode is None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await child.send(json.dumps({"cmd": "quit"}))
            await child.stop(grace=5.0)
        await server.stop(grace=20.0)


def summarize(runs: list[dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for workers in counts:
        mine = [r for r in runs if r["workers"] == workers]
        summary[str(workers)] = {
            key: statistics.median(r[key] for r in mine)
            for key in (
                "pushes_per_s",
                "conn_per_s",
                "server_cpu_cores",
                "loadgen_cpu_cores",
                "machine_busy_pct",
            )
        }
    if "1" in summary:
        base = summary["1"]
        for workers in counts:
            if workers != 1:
                mine = summary[str(workers)]
                mine["pushes_ratio_vs_1"] = mine["pushes_per_s"] / base["pushes_per_s"]
                mine["connect_ratio_vs_1"] = mine["conn_per_s"] / base["conn_per_s"]
    return summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(w) for w in args.workers.split(",")]
    ids = [a.cid for a in list(Universe.load(args.universe_size, seed=0))[:500]]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cmcstream-workers-") as tmp:
        work = Path(tmp)
        store = KeyStore(work / "keys.db")
        keys = [
            store.create(plan="startup", name=f"bench{i}").key
            for i in range(-(-args.conns // CONNS_PER_KEY))
        ]
        store.close()
        keys_file = work / "keys.txt"
        keys_file.write_text("\n".join(keys))
        n = 0
        for round_no in range(args.rounds):
            for workers in counts:
                n += 1
                run = await one_run(workers, args, work, keys_file, ids, n)
                run["round"] = round_no
                runs.append(run)
                print(
                    f"round {round_no} workers {workers}: {run['pushes_per_s']:>10,.0f} pushes/s"
                    f"  {run['conn_per_s']:>7,.0f} conn/s  server {run['server_cpu_cores']:.2f}"
                    f" cores, loadgen {run['loadgen_cpu_cores']:.2f} cores,"
                    f" machine {run['machine_busy_pct']:.0f}% busy",
                    flush=True,
                )
    return {"runs": runs, "summary": summarize(runs, counts)}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run() -> None:
    args = parse_args()
    began = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = asyncio.run(main(args))
    except KeyboardInterrupt:
        print("interrupted; every child process ended", file=sys.stderr)
        sys.exit(130)
    finally:
        procs.kill_all()
    document = {
        "benchmark": "workers",
        "started": began,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "where_the_load_runs": (
            "the load generator runs on this machine, unpinned, sharing its cores with "
            "the server's processes"
        ),
        **result,
    }
    print(json.dumps(document["summary"], indent=2))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"workers-{began}.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    run()
