"""What the market's history costs at start-up, and how it looks and moves.

1. **Start-up.** The market part of ``cmcstream serve`` before it listens: the
   universe is loaded and the simulator's history (listings, daily, hourly and
   5-minute series for every asset) is folded into the market engine.
2. **Bitcoin at start.** Its change fields right after the backfill, at the time
   of the documentation's example push and at ``--start`` (default: now).
3. **Movement.** After the backfill the market is stepped live; every step
   reads each top coin's payload and backs out the reference price of each
   change field (``p / (1 + change / 100)``). The figure is the per-step
   variance of that reference's log, over the per-step variance of the log
   price, averaged over the coins: 1.0 means the history moves like the live
   path. Step and duration decide which references cross a close of their
   tier (5 s for 2 h: the 24 h one; 60 s for 2 days: all of them); the daily
   tiers cross one or two closes per coin, shared through the market factor,
   so their figures are rough.

Prints the figures and writes them to ``benchmarks/results/market-start-<time>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cmcstream.engine.market import MarketEngine
from cmcstream.engine.units import DAY_MS
from cmcstream.sources.simulator.market import MarketSimulator
from cmcstream.sources.simulator.universe import Universe

RESULTS = Path(__file__).parent / "results"
DOC_TS = 1_778_663_880_000  # the documentation's example push, on a 5 s boundary
FIELDS = ("p24h", "p7d", "p30d", "p60d", "p3m", "p1y", "pytd", "pall")
REFERENCES = {"p24h": DAY_MS, "p7d": 7 * DAY_MS, "p30d": 30 * DAY_MS, "p1y": 365 * DAY_MS}


def backfilled(
    size: int, seed: int, now_ms: int, step_ms: int = 5000
) -> tuple[MarketSimulator, MarketEngine, float]:
    started = time.perf_counter()
    sim = MarketSimulator(Universe.load(size, seed=seed), seed=seed, step_ms=step_ms)
    engine = MarketEngine()
    for event in sim.backfill(now_ms):
        engine.apply(event)
    return sim, engine, time.perf_counter() - started


def btc_fields(seed: int, now_ms: int) -> dict[str, float | None]:
    _, engine, _ = backfilled(300, seed, now_ms)
    p = engine.latest_price(1, now_ms)
    assert p is not None
    return {name: getattr(p, name) for name in FIELDS}


def movement(seed: int, now_ms: int, step_ms: int, steps: int, coins: int) -> dict[str, float]:
    sim, engine, _ = backfilled(300, seed, now_ms, step_ms)
    cids = [a.cid for a in sim.universe.assets[:coins] if a.peg is None]
    logs: dict[int, dict[str, list[float]]] = {c: {f: [] for f in ("p", *REFERENCES)} for c in cids}
    t = now_ms
    for _ in range(steps):
        t += step_ms
        for event in sim.step(t):
            engine.apply(event)
        for c in cids:
            p = engine.latest_price(c, t)
            assert p is not None
            logs[c]["p"].append(math.log(p.p))
            for name in REFERENCES:
                change = getattr(p, name)
                logs[c][name].append(math.log(p.p / (1.0 + change / 100.0)))

    def var(xs: list[float]) -> float:
        return statistics.fmean((b - a) ** 2 for a, b in itertools.pairwise(xs))

    return {
        name: round(statistics.fmean(var(logs[c][name]) / var(logs[c]["p"]) for c in cids), 3)
        for name in REFERENCES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups to time")
    parser.add_argument("--size", type=int, default=5000, help="assets in the universe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=None, help="epoch ms (default: now)")
    args = parser.parse_args()
    start = args.start if args.start is not None else int(time.time() * 1000)
    start -= start % 5000

    startup = [round(backfilled(args.size, args.seed, start)[2], 3) for _ in range(args.runs)]
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "size": args.size,
        "seed": args.seed,
        "start_ms": start,
        "startup_s": startup,
        "startup_median_s": statistics.median(startup),
        "btc_at_doc_time": btc_fields(args.seed, DOC_TS),
        "btc_at_start": btc_fields(args.seed, start),
        "variance_ratio_5s_2h": movement(args.seed, DOC_TS, 5000, 1440, 100),
        "variance_ratio_60s_2d": movement(args.seed, DOC_TS, 60_000, 2880, 100),
    }
    text = json.dumps(results, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"market-start-{stamp}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
