"""Request flood: worst-case requests on 9 connections, and what a bystander sees meanwhile.

A real ``cmcstream serve`` (127.0.0.1, a free port, a fresh key store with two
keys, ``--speed 1``) runs pinned to one core; the flood's load generator
(``fanout/floodgen.py``) and this harness share the other.

- **Flood**: ``--conns`` (9) connections of one key, each keeping ``--window``
  (16) requests in flight and sending the next the moment one is answered: a
  subscribe to ``--ids`` (10,000) crypto_ids, ~59 KB, which the subscription
  limit rejects with 2303. Sixteen is the server's own queue of received
  messages per connection (websockets' ``max_queue``), so the flood keeps the
  most work waiting in the server that one connection can; a larger window
  only fills kernel buffers. ``--nesting-every N`` makes one request in N a
  ping nested ``--nesting-depth`` (984) arrays deep; a connection the server
  closes is opened again at once.
- **Bystander**: one connection of another key, subscribed to 100 top-500 ids
  (a market tick every 5 s), sending ``{"id":n,"method":"ping"}`` every
  ``--ping-ms`` (100) on a fixed schedule and timing each pong. Pongs still
  owed when a window ends are waited for (up to ``--grace``) and counted at the
  time they took; one never answered counts as the whole wait.
- **Pushes**: each market push the bystander receives is timed against its
  envelope ``ts`` (delivery) and against the 5 s cadence boundary it was due
  at (``ts`` floored to 5,000 ms; at ``--speed 1`` the server's clock is the
  wall clock, so both are wall times). A tick published more than 5 s late
  would be taken for the next one's: the figure is then a lower bound.

Phases: idle (the flood connections open but quiet) for ``--baseline``
seconds, then the flood: started, in full swing once it has had one reply per
connection, and measured after a further warm-up for ``--seconds``. The
target: the bystander's ping p99 under the flood stays below ``--target-ms``
(50 ms) in every run.

``--compare-ref REF`` runs the server of git revision ``REF`` as well (its
``src/`` exported with ``git archive`` into a temporary directory), and
``--server-src DIR`` that of another ``src/`` directory; the subjects take
turns, run after run. The server always runs on this checkout's environment
(its interpreter and installed dependencies) with ``PYTHONPATH`` set to the
subject's ``src/``. Prints a table and the target, and writes everything to
``benchmarks/results/request-flood-<UTC time>.json``. Loopback only; every
phase is bounded in time and every child process is ended on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cmcstream.sources.simulator.universe import Universe
from fanout import procs, procstat
from fanout.procs import Child, ChildFailed
from fanout.wsclient import Client, Stats, connect

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
RESULTS: Final = HERE / "results"
MARKET: Final = "market@crypto_latest_price"
CADENCE_MS: Final = 5000  # the top-500 assets' push period (ServerConfig.fast_cadence_ms)
_LISTENING: Final = re.compile(r"listening on ws://[\d.]+:(\d+)(/\S*)")
_TS: Final = re.compile(rb'"ts":(\d+)\}$')
# Run in the subject's own interpreter environment, so a key store is made by the
# code that will open it (its schema may differ from this checkout's).
_MAKE_KEYS: Final = """
import sys
from pathlib import Path
import cmcstream
from cmcstream.server.keystore import KeyStore
print(cmcstream.__file__)
store = KeyStore(Path(sys.argv[1]))
try:
    for name in ("flood", "bystander"):
        print(store.create(plan="startup", name=name).key)
finally:
    store.close()
"""


@dataclass(frozen=True)
class Settings:
    runs: int = 1
    conns: int = 9
    # websockets' own per-connection queue (max_queue, 16 frames): the most requests
    # one connection can leave waiting in the server beyond the kernel's buffers.
    window: int = 16
    ids: int = 10_000
    nesting_every: int = 0
    nesting_depth: int = 984
    ping_ms: float = 100.0
    bystander_ids: int = 100
    baseline_s: float = 5.0
    seconds: float = 10.0
    warmup_s: float = 1.0
    grace_s: float = 10.0
    target_ms: float = 50.0
    universe_size: int = 5000
    start_timeout_s: float = 120.0
    quick: bool = False


QUICK: Final = {
    "baseline_s": 1.0,
    "seconds": 1.5,
    "warmup_s": 0.3,
    "grace_s": 4.0,
    "universe_size": 600,
    "quick": True,
}


@dataclass
class Subject:
    """One server code base under test."""

    name: str
    src: Path
    revision: str
    imported_from: str = ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.src)
        env["PYTHONUNBUFFERED"] = "1"
        return env


@dataclass
class Pings:
    """One window's pings: send times, and round trips as the pongs come."""

    sent: dict[int, float] = field(default_factory=dict)
    rtt_ms: list[float] = field(default_factory=list)
    late_answers: int = 0


class Bystander(Client):
    """The connection whose experience is measured: its pongs and its pushes."""

    def __init__(self, stats: Stats) -> None:
        super().__init__(0, stats)
        self.pings: Pings | None = None
        self.answered = asyncio.Event()
        # (received wall ms, envelope ts) of every market push
        self.arrivals: list[tuple[float, int]] = []

    def _reply(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "pong":
            pings = self.pings
            rid = message.get("id")
            if pings is not None and isinstance(rid, int) and rid in pings.sent:
                pings.rtt_ms.append((time.monotonic() - pings.sent.pop(rid)) * 1000.0)
                if not pings.sent:
                    self.answered.set()
            return
        super()._reply(message)

    def _latency(self, payload: bytes, size: int) -> None:
        match = _TS.search(payload)
        if match is not None:
            self.arrivals.append((time.time() * 1000.0, int(match.group(1))))

    async def ping_window(self, seconds: float, period_ms: float, first_id: int) -> Pings:
        """Ping every ``period_ms`` for ``seconds`` on a fixed schedule (a late pong
        delays no later ping)."""
        pings = Pings()
        self.pings = pings
        loop = asyncio.get_running_loop()
        began = loop.time()
        count = max(1, int(seconds * 1000 / period_ms))
        for n in range(count):
            await asyncio.sleep(max(0.0, began + n * period_ms / 1000 - loop.time()))
            rid = first_id + n
            pings.sent[rid] = time.monotonic()
            self.answered.clear()
            self.send_text(b'{"id":%d,"method":"ping"}' % rid)
        await asyncio.sleep(max(0.0, began + count * period_ms / 1000 - loop.time()))
        return pings

    async def settle(self, pings: Pings, grace_s: float) -> int:
        """Wait up to ``grace_s`` for the pongs still owed; those never answered count
        as the whole wait. Returns how many were never answered."""
        if pings.sent:
            pings.late_answers = len(pings.sent)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), grace_s)
        unanswered = len(pings.sent)
        now = time.monotonic()
        pings.rtt_ms.extend((now - sent) * 1000.0 for sent in pings.sent.values())
        pings.sent.clear()
        self.pings = None
        return unanswered


# -- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "count": len(values),
        "p50_ms": r(percentile(values, 0.50)),
        "p99_ms": r(percentile(values, 0.99)),
        "max_ms": r(max(values) if values else None),
    }


def push_figures(pushes: list[tuple[float, int]], lo_ms: float, hi_ms: float) -> dict[str, Any]:
    """Lateness of the pushes due in [lo_ms, hi_ms) of wall time."""
    due_late, delivery = [], []
    ticks = set()
    for received, ts in pushes:
        due = ts - ts % CADENCE_MS
        if lo_ms <= due < hi_ms:
            ticks.add(due)
            due_late.append(received - due)
            delivery.append(received - ts)
    return {
        "ticks": len(ticks),
        "vs_due": spread(due_late),
        "vs_ts": spread(delivery),
    }


# -- one run of one subject ---------------------------------------------------------------------


async def command(child: Child, cmd: str, event: str, within_s: float = 10.0) -> dict[str, Any]:
    await child.send(json.dumps({"cmd": cmd}))
    return await procs.expect(child, event, within_s)


async def flood_established(flood: Child, s: Settings) -> float:
    """Wait until the flood has had as many replies as it has connections, so the
    window measures a flood in full swing; returns how long that took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        mark = await command(flood, "mark", "mark")
        if mark["answered"] >= s.conns:
            return loop.time() - began
        if loop.time() - began > s.start_timeout_s:
            raise ChildFailed(f"flood: {mark['answered']} replies in {s.start_timeout_s:g} s")
        await asyncio.sleep(0.05)


def make_keys(subject: Subject, db: Path) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _MAKE_KEYS, str(db)],
        env=subject.env(),
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise ChildFailed(f"key store for {subject.name}: {done.stderr.strip()[-600:]}")
    imported, flood_key, bystander_key = done.stdout.split()
    if not Path(imported).resolve().is_relative_to(subject.src.resolve()):
        raise ChildFailed(f"{subject.name}: cmcstream imported from {imported}, not {subject.src}")
    subject.imported_from = imported
    return flood_key, bystander_key


async def start_server(
    subject: Subject, db: Path, settings: Settings, cpu: int | None
) -> tuple[Child, int, str]:
    argv = [
        sys.executable,
        "-m",
        "cmcstream",
        "serve",
        "--port",
        "0",
        "--db",
        str(db),
        "--speed",
        "1",
        "--universe-size",
        str(settings.universe_size),
        "--idle-timeout",
        "600",
    ]
    child = await procs.spawn(
        f"server ({subject.name})", argv, cpu=cpu, env=subject.env(), cwd=db.parent
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.start_timeout_s
    port: int | None = None
    path = "/v1"
    try:
        while True:
            line = await child.line(max(0.1, deadline - loop.time()))
            if match := _LISTENING.search(line):
                port, path = int(match.group(1)), match.group(2)
            elif line.startswith("Press Ctrl-C") and port is not None:
                return child, port, path
    except BaseException:
        await child.stop()
        raise


def bystander_ids(settings: Settings) -> list[int]:
    assets = Universe.load(settings.universe_size).assets
    return [asset.cid for asset in assets[: min(settings.bystander_ids, 500)]]


def cpu_of(pid: int) -> float:
    try:
        return procstat.cpu_seconds(pid)
    except OSError:
        return 0.0


async def run_subject(
    subject: Subject, settings: Settings, work: Path, cpus: list[int], index: int
) -> dict[str, Any]:
    s = settings
    db = work / f"keys-{index}.db"
    flood_key, bystander_key = make_keys(subject, db)
    server_cpu = cpus[0] if cpus else None
    gen_cpu = cpus[1] if cpus else None
    server, port, path = await start_server(subject, db, s, server_cpu)
    flood: Child | None = None
    bystander: Bystander | None = None
    began = time.monotonic()
    try:
        plan = {
            "host": "127.0.0.1",
            "port": port,
            "path": path,
            "key": flood_key,
            "conns": s.conns,
            "window": s.window,
            "ids": s.ids,
            "nesting_every": s.nesting_every,
            "nesting_depth": s.nesting_depth,
            "connect_timeout": 20.0,
        }
        flood = await procs.spawn(
            "floodgen",
            [sys.executable, str(HERE / "fanout" / "floodgen.py"), json.dumps(plan)],
            cpu=gen_cpu,
            stdin=True,
        )
        flood_pid = flood.pid
        connected = await procs.expect(flood, "connected", 60.0)
        if connected["opened"] != s.conns:
            raise ChildFailed(f"flood opened {connected['opened']} of {s.conns}: {connected}")
        stats = Stats(0, 1.0)

        def make() -> Bystander:
            return Bystander(stats)

        client = await connect(
            0, stats, f"ws://127.0.0.1:{port}{path}", bystander_key, 0, 20.0, factory=make
        )
        assert isinstance(client, Bystander)
        bystander = client
        await asyncio.wait_for(bystander.welcomed, 20.0)
        acked = bystander.expect_acks(1)
        ids = bystander_ids(s)
        request = {"id": 1, "method": "subscribe", "channel": MARKET, "params": {"crypto_ids": ids}}
        bystander.send_text(json.dumps(request, separators=(",", ":")).encode())
        await asyncio.wait_for(acked, 20.0)
        stats.recording = True
        await asyncio.sleep(s.warmup_s)

        # Idle: the flood's connections are open and quiet.
        idle_lo = time.time() * 1000
        cpu0, t0 = cpu_of(server.pid), time.monotonic()
        idle = await bystander.ping_window(s.baseline_s, s.ping_ms, 1_000)
        idle_secs = time.monotonic() - t0
        idle_cpu = cpu_of(server.pid) - cpu0
        idle_hi = time.time() * 1000
        idle_unanswered = await bystander.settle(idle, s.grace_s)

        # Flood.
        await command(flood, "go", "flooding")
        established = await flood_established(flood, s)
        await asyncio.sleep(s.warmup_s)
        mark0 = await command(flood, "mark", "mark")
        flood_lo = time.time() * 1000
        cpu0, busy0, t0 = cpu_of(server.pid), procstat.cpu_busy()[0], time.monotonic()
        gen0, me0 = cpu_of(flood.pid), os.times()
        during = await bystander.ping_window(s.seconds, s.ping_ms, 1_000_000)
        mark1 = await command(flood, "mark", "mark")
        flood_secs = time.monotonic() - t0
        flood_cpu = cpu_of(server.pid) - cpu0
        me1 = os.times()
        others = (
            procstat.cpu_busy()[0]
            - busy0
            - flood_cpu
            - (cpu_of(flood.pid) - gen0)
            - (me1.user - me0.user + me1.system - me0.system)
        )
        flood_hi = time.time() * 1000
        final = await command(flood, "quit", "quit")
        await flood.stop(grace=5.0)
        flood = None
        during_unanswered = await bystander.settle(during, s.grace_s)
        # Ticks due in the flood window that the server published late are in by now.
        await asyncio.sleep(0.2)
        stats.recording = False
        window_s = mark1["t"] - mark0["t"]
        answered = mark1["answered"] - mark0["answered"]
        replies = {
            k: n - mark0["by_reply"].get(k, 0)
            for k, n in mark1["by_reply"].items()
            if n - mark0["by_reply"].get(k, 0)
        }
        closes = {
            k: n - mark0["closes"].get(k, 0)
            for k, n in mark1["closes"].items()
            if n - mark0["closes"].get(k, 0)
        }
        return {
            "ok": True,
            "subject": subject.name,
            "run": index,
            "server_pid": server.pid,
            "floodgen_pid": flood_pid,
            "server_cpu": server_cpu,
            "loadgen_cpu": gen_cpu,
            "idle": {
                "secs": round(idle_secs, 3),
                "ping_rtt": spread(idle.rtt_ms),
                "pings_unanswered": idle_unanswered,
                "pushes": push_figures(bystander.arrivals, idle_lo, idle_hi),
                "server_cpu_pct": round(100 * idle_cpu / idle_secs, 1),
            },
            "flood": {
                "secs": round(flood_secs, 3),
                "ping_rtt": spread(during.rtt_ms),
                "pings_late": during.late_answers,
                "pings_unanswered": during_unanswered,
                "pushes": push_figures(bystander.arrivals, flood_lo, flood_hi),
                "established_s": round(established, 3),
                "server_cpu_pct": round(100 * flood_cpu / flood_secs, 1),
                "other_cpu_pct": round(100 * max(0.0, others) / flood_secs, 1),
                "requests_answered": answered,
                "requests_per_s": round(answered / window_s, 1) if window_s > 0 else None,
                "sent_mb_per_s": round(
                    (mark1["sent_bytes"] - mark0["sent_bytes"]) / window_s / 1e6, 2
                ),
                "replies": replies,
                "closes": closes,
                "reconnects": mark1["reconnects"] - mark0["reconnects"],
                "reconnect_failures": mark1["reconnect_failures"] - mark0["reconnect_failures"],
                "whole_flood": {k: final[k] for k in ("sent", "answered", "by_reply", "closes")},
            },
            "wall_s": round(time.monotonic() - began, 1),
        }
    finally:
        if bystander is not None:
            bystander.abort()
        if flood is not None:
            await flood.stop(grace=2.0)
        await server.stop(grace=5.0)


# -- subjects -----------------------------------------------------------------------------------


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def current_revision() -> str:
    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    except (SystemExit, OSError):
        return "unknown"
    return sha + ("+changes" if dirty else "")


def export_ref(ref: str, into: Path) -> Subject:
    """``src/`` of git revision ``ref``, exported into ``into`` (no worktree to clean up)."""
    sha = git("rev-parse", "--verify", "--short", f"{ref}^{{commit}}")
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "src"],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return Subject(f"{ref}", into / "src", sha)


def subjects_of(args: argparse.Namespace, work: Path) -> list[Subject]:
    subjects = [Subject("current", ROOT / "src", current_revision())]
    if args.compare_ref:
        subjects.append(export_ref(args.compare_ref, work / "ref"))
    if args.server_src:
        src = args.server_src.resolve()
        if not (src / "cmcstream" / "__init__.py").exists():
            raise SystemExit(f"--server-src: no cmcstream package in {src}")
        subjects.append(Subject(f"src {src}", src, "dir"))
    return subjects


# -- the whole run ------------------------------------------------------------------------------


def describe(s: Settings) -> str:
    return (
        f"{s.conns} conns of one key × {s.window} in flight: subscribe with {s.ids:,} crypto_ids "
        f"(2303)"
        + (
            f", 1 in {s.nesting_every} a ping nested {s.nesting_depth} deep"
            if s.nesting_every
            else ""
        )
        + f"; bystander (another key, {s.bystander_ids} ids) pings every {s.ping_ms:g} ms; "
        f"idle {s.baseline_s:g} s, flood {s.seconds:g} s"
    )


async def execute(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    began = time.time()
    pin = procs.can_pin() and not args.no_pin
    cpus = sorted(os.sched_getaffinity(0))[:2] if pin else []
    if pin:
        # The bystander runs here: on the load generator's core, off the server's.
        os.sched_setaffinity(0, {cpus[1]})
    with tempfile.TemporaryDirectory(prefix="cmcstream-flood-") as tmp:
        work = Path(tmp)
        subjects = subjects_of(args, work)
        runs: list[dict[str, Any]] = []
        n = 0
        for index in range(settings.runs):
            order = subjects if index % 2 == 0 else subjects[::-1]
            for subject in order:
                n += 1
                progress(f"[{subject.name}] run {index + 1}/{settings.runs}…")
                try:
                    run = await run_subject(subject, settings, work, cpus, n)
                except (ChildFailed, OSError, TimeoutError, ConnectionError) as exc:
                    run = {"ok": False, "subject": subject.name, "run": n, "error": repr(exc)}
                runs.append(run)
                progress(f"[{subject.name}] {brief(run)}")
    result: dict[str, Any] = {
        "harness": "benchmarks/request_flood.py",
        "mode": "quick" if settings.quick else "full",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "duration_s": round(time.time() - began, 1),
        "description": describe(settings),
        "settings": asdict(settings),
        "subjects": [
            {
                "name": s.name,
                "revision": s.revision,
                "src": str(s.src),
                "imported_from": s.imported_from,
            }
            for s in subjects
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pinned": pin,
            "server_cpu": cpus[0] if pin else None,
            "loadgen_cpu": cpus[1] if pin else None,
        },
        "runs": runs,
        "notes": [
            "The server runs pinned to one core; the flood's load generator and the "
            "bystander (this harness) share the other.",
            "Ping round trips are measured on a fixed 100 ms schedule: a late pong does not "
            "hold back the next ping. A pong never answered counts as the whole wait.",
            "With subjects compared, they take turns (run 1: current first; run 2: the other).",
        ],
    }
    result["targets"] = targets(result, settings)
    return result


def targets(result: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    """One row per subject: every run's flood p99 below the target."""
    rows = []
    for subject in result["subjects"]:
        runs = [r for r in result["runs"] if r["subject"] == subject["name"]]
        p99s = [r["flood"]["ping_rtt"]["p99_ms"] for r in runs if r.get("ok")]
        failed = [r for r in runs if not r.get("ok")]
        value = max(p99s) if p99s and not failed else None
        status = "NOT RUN" if value is None else ("PASS" if value < s.target_ms else "FAIL")
        rows.append(
            {
                "target": f"bystander ping p99 < {s.target_ms:g} ms under the flood "
                f"({subject['name']}, {subject['revision']})",
                "value": value,
                "status": status,
                "why": failed[0]["error"] if failed else "",
            }
        )
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value:,}"


def table(result: dict[str, Any]) -> str:
    lines = [
        "",
        "Request flood — " + result["description"],
        "",
        f"{'subject':<24}{'phase':<7}{'pings':>6}{'p50 ms':>9}{'p99 ms':>10}{'max ms':>10}"
        f"{'lost':>5}{'tick late p50/p99/max ms':>28}{'req/s':>8}{'srv CPU%':>9}",
    ]
    revisions = {s["name"]: s["revision"] for s in result["subjects"]}
    for run in result["runs"]:
        name = f"{run['subject']} {revisions[run['subject']]}"[-23:]
        if not run.get("ok"):
            lines.append(f"{name:<24}FAILED: {run.get('error', '')[:150]}")
            continue
        for phase in ("idle", "flood"):
            w = run[phase]
            rtt = w["ping_rtt"]
            due = w["pushes"]["vs_due"]
            late = "/".join(fmt(due[k]) for k in ("p50_ms", "p99_ms", "max_ms"))
            rate = w.get("requests_per_s")
            lines.append(
                f"{name:<24}{phase:<7}{rtt['count']:>6}{fmt(rtt['p50_ms']):>9}"
                f"{fmt(rtt['p99_ms']):>10}{fmt(rtt['max_ms']):>10}{w['pings_unanswered']:>5}"
                f"{late:>28}{fmt(rate) if rate is not None else '':>8}"
                f"{fmt(w['server_cpu_pct']):>9}"
            )
        f = run["flood"]
        lines.append(
            f"{'':<24}flood replies {f['replies']}, closes {f['closes'] or 'none'}, "
            f"reconnects {f['reconnects']}, {f['sent_mb_per_s']:g} MB/s sent, "
            f"other processes {f['other_cpu_pct']:g} % CPU"
        )
    lines += ["", "Target"]
    for row in result["targets"]:
        shown = "–" if row["value"] is None else f"{row['value']:,.1f} ms"
        why = f"  ({row['why'][:150]})" if row["why"] else ""
        lines.append(f"  {row['target']:<72}{shown:>12}  {row['status']}{why}")
    return "\n".join(lines)


def brief(run: dict[str, Any]) -> str:
    if not run.get("ok"):
        return "FAILED " + str(run.get("error"))[:300]
    idle, flood = run["idle"]["ping_rtt"], run["flood"]["ping_rtt"]
    return (
        f"ping p99 idle {fmt(idle['p99_ms'])} ms, flood {fmt(flood['p99_ms'])} ms "
        f"(max {fmt(flood['max_ms'])}); {fmt(run['flood']['requests_per_s'])} req/s "
        f"({run['wall_s']:.1f} s)"
    )


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, a small market")
    parser.add_argument("--runs", type=int, default=d.runs, help="runs per subject")
    parser.add_argument("--conns", type=int, default=d.conns, help="flood connections")
    parser.add_argument("--window", type=int, default=d.window, help="requests in flight per conn")
    parser.add_argument("--ids", type=int, default=d.ids, help="crypto_ids per flood subscribe")
    parser.add_argument(
        "--nesting-every",
        type=int,
        default=d.nesting_every,
        help="one request in N is the deeply nested ping (0: none)",
    )
    parser.add_argument("--nesting-depth", type=int, default=d.nesting_depth)
    parser.add_argument("--ping-ms", type=float, default=d.ping_ms, help="bystander ping period")
    parser.add_argument("--baseline", type=float, default=None, help="idle phase seconds")
    parser.add_argument("--seconds", type=float, default=None, help="flood phase seconds")
    parser.add_argument("--grace", type=float, default=None, help="longest wait for late pongs")
    parser.add_argument("--target-ms", type=float, default=d.target_ms, help="ping p99 target")
    parser.add_argument("--universe-size", type=int, default=None)
    parser.add_argument("--compare-ref", metavar="GIT_REF", help="also run this revision's server")
    parser.add_argument("--server-src", type=Path, metavar="DIR", help="also run DIR's server")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.conns < 1 or args.window < 1 or args.runs < 1:
        parser.error("--conns, --window and --runs must be at least 1")
    if args.conns > 10:
        parser.error("--conns: one key holds at most 10 connections")
    return args


def make_settings(args: argparse.Namespace) -> Settings:
    base = Settings(**QUICK) if args.quick else Settings()  # type: ignore[arg-type]
    overrides: dict[str, Any] = {
        "runs": args.runs,
        "conns": args.conns,
        "window": args.window,
        "ids": args.ids,
        "nesting_every": args.nesting_every,
        "nesting_depth": args.nesting_depth,
        "ping_ms": args.ping_ms,
        "target_ms": args.target_ms,
    }
    for name, value in (
        ("baseline_s", args.baseline),
        ("seconds", args.seconds),
        ("grace_s", args.grace),
        ("universe_size", args.universe_size),
    ):
        if value is not None:
            overrides[name] = value
    return replace(base, **overrides)


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
    print(table(result))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / time.strftime("request-flood-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nsaved {out} ({result['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
