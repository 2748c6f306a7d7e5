"""The Redis bus against the in-process one: fan-out and publish-to-socket latency.

One server process runs a feed and a gateway (pinned to one core), with the
load generator of ``benchmarks/run.py`` on the other core, over loopback. The
server is started by ``benchmarks/fanout/cmcstream_node.py`` with ``--bus
memory`` or ``--bus redis://…``; over Redis the feed publishes to the Redis
server and the gateway receives from it, in the same process, so both runs do
the same feed and gateway work and differ only by the bus. The Redis server
(unpinned) shares the two cores.

Runs take turns (memory, Redis, memory, Redis, …) so that the machine's drift
spreads over both. Two scenarios of the suite, at a size that keeps each run
under a minute:

- fan-out: ``--conns`` connections × 100 ids at ``--speed`` (ticks back to
  back): pushes/s,
  and the server's CPU per push;
- latency: 1,000 connections × 10 ids, 20,000 pushes/s in ticks of 10,000:
  receipt minus the push's ``ts`` (stamped when the feed publishes), p50/p99;
- light latency: the same with 100 connections × 1 id (ticks of 100 pushes,
  20 a second), where no burst has to drain and the bus's hop shows.

Prints a table and writes ``benchmarks/results/redis-bus-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import procs
from fanout.frames import build_frames, busiest_token
from fanout.procs import ChildFailed
from fanout.scenarios import Context, Settings, fanout, latency
from fanout.servers import Launch
from run import make_keys, progress, raise_fd_limit

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class BusContext(Context):
    """A run's context whose servers all use one bus."""

    bus: str = "memory"

    def launch(self, speed: float, **extra: Any) -> Launch:
        return dataclasses.replace(super().launch(speed, **extra), bus=self.bus)


async def light_latency(ctx: Context, name: str) -> dict[str, Any]:
    """Latency with no burst to drain: 100 connections × 1 id, 20 ticks/s of 100 pushes."""
    light = dataclasses.replace(ctx.settings, latency_conns=100, latency_ids=1, latency_speed=100.0)
    return await latency(dataclasses.replace(ctx, settings=light), name)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--runs", type=int, default=3, help="runs of each bus per scenario")
    parser.add_argument("--conns", type=int, default=1000, help="fan-out connections")
    parser.add_argument(
        "--speed", type=float, default=100.0, help="fan-out --speed (ticks back to back)"
    )
    parser.add_argument("--measure", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke test")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    return parser.parse_args()


FIGURES = {
    "fanout": ("pushes_per_s", "server_cpu_pct", "server_us_per_push"),
    "latency": ("lat_p50_ms", "lat_p99_ms", "pushes_per_s"),
    "light_latency": ("lat_p50_ms", "lat_p99_ms", "pushes_per_s"),
}


async def execute(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        settings = Settings.quick_mode(runs=1)
    else:
        settings = Settings(
            runs=args.runs,
            fanout_conns=args.conns,
            fanout_speed=args.speed,
            measure_s=args.measure,
            warmup_s=1.5,
        )
    buses = {"memory": "memory", "redis": args.redis}
    conns = max(settings.fanout_conns, settings.latency_conns, 100)  # 100: light latency
    raise_fd_limit(conns + 200)
    pin = procs.can_pin()
    cpus = sorted(os.sched_getaffinity(0)) if pin else []
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        key: {bus: [] for bus in buses} for key in FIGURES
    }
    with tempfile.TemporaryDirectory(prefix="cmcstream-bench-") as tmp:
        work = Path(tmp)
        start_ms = int(time.time() * 1000) // 60_000 * 60_000
        frames = build_frames(settings.universe_size, settings.seed, start_ms)
        frames_path = work / "frames.json"
        frames.save(frames_path)
        db, keys_file = work / "keys.db", work / "keys.txt"
        per_key = make_keys(db, keys_file, conns)
        contexts = {
            name: BusContext(
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
                bus=url,
            )
            for name, url in buses.items()
        }
        scenarios = (("fanout", fanout), ("latency", latency), ("light_latency", light_latency))
        for key, scenario in scenarios:
            for index in range(settings.runs):
                for name, ctx in contexts.items():
                    began = time.monotonic()
                    try:
                        run = await asyncio.wait_for(scenario(ctx, "cmcstream"), 120)
                    except (ChildFailed, TimeoutError) as exc:
                        # Others share this machine: a stalled load generator gets one retry.
                        progress(f"[{key}] {name} run {index + 1} failed ({exc}); once more")
                        run = await asyncio.wait_for(scenario(ctx, "cmcstream"), 120)
                        run["retried_after"] = str(exc)
                    run["wall_s"] = time.monotonic() - began
                    results[key][name].append(run)
                    shown = ", ".join(f"{f} {run.get(f, float('nan')):,.1f}" for f in FIGURES[key])
                    progress(f"[{key}] {name} run {index + 1}/{settings.runs}: {shown}")
    summary: dict[str, Any] = {}
    for key, fields in FIGURES.items():
        summary[key] = {}
        for name in buses:
            runs = results[key][name]
            summary[key][name] = {
                f: {
                    "median": statistics.median(r[f] for r in runs),
                    "min": min(r[f] for r in runs),
                    "max": max(r[f] for r in runs),
                }
                for f in fields
                if all(f in r for r in runs)
            }
    memory, redis = summary["fanout"]["memory"], summary["fanout"]["redis"]
    ratio = redis["pushes_per_s"]["median"] / memory["pushes_per_s"]["median"]
    return {
        "harness": "benchmarks/redis_bus.py",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": dataclasses.asdict(settings),
        "buses": buses,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "server_cpu": cpus[0] if pin else None,
            "loadgen_cpu": cpus[1] if pin else None,
            "pinned": pin,
        },
        "runs": results,
        "summary": summary,
        "fanout_ratio_redis_over_memory": ratio,
    }


def table(result: dict[str, Any]) -> str:
    s = result["summary"]

    def cell(key: str, bus: str, field: str, fmt: str) -> str:
        stats = s[key][bus].get(field)
        if stats is None:
            return "–"
        return f"{stats['median']:{fmt}} ({stats['min']:{fmt}}–{stats['max']:{fmt}})"

    rows = [
        "| | memory bus | Redis bus |",
        "|---|---|---|",
        "| fan-out, pushes/s | "
        + " | ".join(cell("fanout", b, "pushes_per_s", ",.0f") for b in ("memory", "redis"))
        + " |",
        "| fan-out, server CPU % | "
        + " | ".join(cell("fanout", b, "server_cpu_pct", ".0f") for b in ("memory", "redis"))
        + " |",
        "| fan-out, server CPU per push, µs | "
        + " | ".join(cell("fanout", b, "server_us_per_push", ".2f") for b in ("memory", "redis"))
        + " |",
    ]
    for key, title in (("latency", "20,000 pushes/s"), ("light_latency", "light load")):
        for field, q in (("lat_p50_ms", "p50"), ("lat_p99_ms", "p99")):
            rows.append(
                f"| latency {title}, {q}, ms | "
                + " | ".join(cell(key, b, field, ".1f") for b in ("memory", "redis"))
                + " |"
            )
    rows.append(f"\nfan-out, Redis / memory: {result['fanout_ratio_redis_over_memory']:.2f}×")
    return "\n".join(rows)


def main() -> None:
    args = parse_args()
    result = asyncio.run(execute(args))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.out_dir / f"redis-bus-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
