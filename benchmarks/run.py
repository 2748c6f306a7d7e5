"""The fan-out benchmark suite: cmcstream against its peers, one command.

Five scenarios, each run ``--runs`` times on a fresh server process pinned to one
core, with the load generator pinned to the other:

1. market fan-out — 10,000 connections × 100 ids of the top 500, the server's
   clock sped up so ticks run back to back: delivered pushes/s, server CPU, RSS
   per connection;
2. latency at a fixed 20,000 pushes/s (1,000 connections): p50/p99/p99.9 from
   the push's ``ts`` to its receipt;
3. on-chain burst — a swap storm on the busiest BSC token, 1,000 connections on
   its transactions, 1 s klines and token metrics (cmcstream only);
4. connect storm — 10,000 connections, 256 at a time, each until ``welcome``;
5. slow readers — one connection in ten stops reading (cmcstream only).

The peers (``benchmarks/peers/``) push cmcstream's own frames on cmcstream's
schedule: a raw ceiling, a first ``websockets.broadcast()`` server and a Node.js
``ws`` server. Prints the comparison table and the targets, and writes everything
to ``benchmarks/results/run-<UTC time>.json``. ``--quick`` runs it all at small
scale in well under a minute. Loopback only; every phase has a timeout and every
child process is ended on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cmcstream.protocol.plans import PLANS
from cmcstream.server.keystore import KeyStore
from fanout import procs, report
from fanout.frames import build_frames, busiest_token
from fanout.scenarios import SCENARIOS, Context, Settings, run_scenario
from fanout.servers import ALL_SERVERS, PEER_TITLES, prepare_node_peer

RESULTS = Path(__file__).resolve().parent / "results"
KEY_PLAN = "startup"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="everything at small scale, 1 run")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3)")
    parser.add_argument(
        "--servers",
        default=",".join(ALL_SERVERS),
        help="comma-separated: cmcstream,raw,broadcast,node",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(s.key for s in SCENARIOS),
        help="comma-separated: " + ",".join(s.key for s in SCENARIOS),
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--loadgens", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--retry-noisy",
        type=int,
        default=0,
        metavar="N",
        help="repeat a run up to N times while other processes load the machine",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting, e.g. --set fanout_conns=2000 (see fanout/scenarios.py)",
    )
    return parser.parse_args(argv)


def make_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for item in args.set:
        name, _, text = item.partition("=")
        if name not in fields:
            raise SystemExit(f"--set: no setting {name!r}")
        current = getattr(Settings(), name)
        overrides[name] = type(current)(text)
    if args.runs is not None:
        overrides["runs"] = args.runs
    overrides["loadgens"] = args.loadgens
    overrides["retry_noisy"] = args.retry_noisy
    overrides["servers"] = tuple(s for s in args.servers.split(",") if s)
    unknown = set(overrides["servers"]) - set(ALL_SERVERS)
    if unknown:
        raise SystemExit(f"--servers: unknown {sorted(unknown)}")
    return Settings.quick_mode(**overrides) if args.quick else Settings(**overrides)


def raise_fd_limit(needed: int) -> None:
    """Children inherit the soft open-files limit; lift it to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"open-files hard limit {hard} is below the {needed} one process needs; "
            "use --loadgens 2 or fewer connections (--set)"
        )


def make_keys(db: Path, keys_file: Path, conns: int) -> int:
    """Keys enough for ``conns`` connections at the plan's connection limit."""
    per_key = PLANS[KEY_PLAN].connection_limit
    store = KeyStore(db)
    try:
        keys = [
            store.create(plan=KEY_PLAN, credits=1e12, name=f"bench-{n}").key
            for n in range(math.ceil(conns / per_key))
        ]
    finally:
        store.close()
    keys_file.write_text("\n".join(keys) + "\n")
    return per_key


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def describe(settings: Settings, key: str, token: tuple[str, str]) -> str:
    s = settings
    if key == "fanout":
        return (
            f"{s.fanout_conns:,} conns × {s.fanout_ids} ids of the top 500, "
            f"--speed {s.fanout_speed:g} (a tick of {s.fanout_conns * s.fanout_ids:,} pushes "
            f"due every {5 / s.fanout_speed:g} s); "
            f"pushes parsed on 1 in {s.fanout_parse_every} conns, counted on all"
        )
    if key == "latency":
        return (
            f"{s.latency_conns:,} conns × {s.latency_ids} ids, --speed {s.latency_speed:g}: "
            f"{s.latency_rate:,.0f} pushes/s in ticks every {5 / s.latency_speed:g} s; "
            "latency = receipt − envelope ts, ts mapped to the monotonic clock by ping/pong"
        )
    if key == "onchain":
        return (
            f"{s.onchain_conns:,} conns on {token[0]} ({token[1][:10]}…, "
            f"platform {s.onchain_platform}): transaction + kline 1s + token_metric; "
            f"dex_activity {s.onchain_activity:g}, --speed {s.onchain_speed:g}"
        )
    if key == "storm":
        return f"{s.storm_conns:,} conns opened {s.parallel} at a time, each until welcome"
    return (
        f"{s.slow_conns:,} conns × {s.slow_ids} ids, --speed {s.slow_speed:g}; 1 in {s.slow_every} "
        f"stops reading (receive buffer {s.slow_rcvbuf} B); slow_timeout_s {s.slow_timeout_s:g}; "
        "healthy = the other 90 %, same connections in both windows"
    )


async def execute(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    began = time.time()
    chosen = [s for s in SCENARIOS if s.key in args.scenarios.split(",")]
    if not chosen:
        raise SystemExit("--scenarios: nothing to run")
    max_conns = max(
        {
            "fanout": settings.fanout_conns,
            "latency": settings.latency_conns,
            "onchain": settings.onchain_conns,
            "storm": settings.storm_conns,
            "slow": settings.slow_conns,
        }[s.key]
        for s in chosen
    )
    raise_fd_limit(max_conns // max(1, settings.loadgens) + 200)
    servers: dict[str, dict[str, Any]] = {}
    for name in settings.servers:
        why = prepare_node_peer() if name == "node" else None
        servers[name] = {"ran": why is None, "why_not": why}
        if why is not None:
            progress(f"node peer NOT RUN: {why}")
    pin = procs.can_pin() and not args.no_pin
    cpus = sorted(os.sched_getaffinity(0)) if pin else []
    with tempfile.TemporaryDirectory(prefix="cmcstream-bench-") as tmp:
        work = Path(tmp)
        start_ms = int(time.time() * 1000) // 60_000 * 60_000
        progress("building frames from cmcstream's engine and codec…")
        frames = build_frames(settings.universe_size, settings.seed, start_ms)
        frames_path = work / "frames.json"
        frames.save(frames_path)
        db, keys_file = work / "keys.db", work / "keys.txt"
        per_key = make_keys(db, keys_file, max_conns)
        ctx = Context(
            settings=settings,
            work=work,
            keys_file=keys_file,
            db_template=db,
            frames_path=frames_path,
            frames=frames,
            start_ms=start_ms,
            token=busiest_token(settings.seed, settings.onchain_platform),
            server_cpu=cpus[0] if pin else None,
            loadgen_cpu=cpus[1] if pin else None,
            conns_per_key=per_key,
        )
        scenarios: dict[str, Any] = {}
        for scenario in chosen:
            names = [n for n in settings.servers if servers[n]["ran"] and n in scenario.servers]
            omitted = [n for n in settings.servers if n not in scenario.servers]
            missing = [
                f"{n} NOT RUN: {servers[n]['why_not']}"
                for n in settings.servers
                if n in scenario.servers and not servers[n]["ran"]
            ]
            notes = [f"peers omitted for this scenario: {', '.join(omitted)}"] if omitted else []
            entry: dict[str, Any] = {
                "title": scenario.title,
                "description": describe(settings, scenario.key, ctx.token),
                "servers": {n: {"runs": []} for n in names},
                "omitted": "; ".join(notes + missing),
            }
            scenarios[scenario.key] = entry
            for index in range(settings.runs):
                for name in names:
                    run = await run_scenario(ctx, scenario, name, index)
                    entry["servers"][name]["runs"].append(run)
                    progress(
                        f"[{scenario.key}] {name} run {index + 1}/{settings.runs}: {brief(run)}"
                    )
            metrics = report.METRICS[scenario.key]
            for name in names:
                server = entry["servers"][name]
                server["summary"] = report.summarize(server["runs"], metrics)
            entry["ratios"] = report.ratios(entry["servers"], metrics)
    result: dict[str, Any] = {
        "harness": "benchmarks/run.py",
        "mode": "quick" if settings.quick else "full",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "duration_s": time.time() - began,
        "settings": dataclasses.asdict(settings),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "server_cpu": ctx.server_cpu,
            "loadgen_cpu": ctx.loadgen_cpu,
            "pinned": pin,
        },
        "frames": {"ids": len(frames.ids), "mean_frame_bytes": frames.mean_frame_bytes()},
        "servers": {
            name: {**info, "title": PEER_TITLES.get(name, "the server under test")}
            for name, info in servers.items()
        },
        "scenarios": scenarios,
        "notes": [
            "All servers run one asyncio (or Node) event loop on one core; the load generator "
            "(picows client, uvloop when installed) runs on the other core.",
            "The machine may be shared: other_cpu_pct is what other processes used meanwhile.",
        ],
    }
    result["targets"] = report.targets(result)
    return result


def brief(run: dict[str, Any]) -> str:
    if not run.get("ok"):
        return "FAILED " + str(run.get("error"))[:200]
    parts = []
    for key, label in (
        ("pushes_per_s", "pushes/s"),
        ("conn_per_s", "conn/s"),
        ("lat_p99_ms", "p99 ms"),
        ("server_cpu_pct", "server CPU %"),
        ("loadgen_cpu_pct", "loadgen CPU %"),
        ("healthy_ratio", "healthy ratio"),
    ):
        value = run.get(key)
        if isinstance(value, int | float):
            parts.append(f"{value:,.2f} {label}" if value < 100 else f"{value:,.0f} {label}")
    return ", ".join(parts) + f" ({run['wall_s']:.1f} s)"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = make_settings(args)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = asyncio.run(execute(args, settings))
    except KeyboardInterrupt:
        progress("interrupted; every child process ended")
        return 130
    finally:
        procs.kill_all()
    print(report.table(result))
    print(report.targets_table(result["targets"]))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("run-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nsaved {out} ({result['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
