"""Server memory under repeated rounds of half-sent WebSocket handshakes.

Each round opens ``--per-round`` TCP connections to a server process, sends the
first lines of an HTTP upgrade request on each and never finishes it, then waits
until the server has dropped them all (its opening-handshake timeout). After
every round the server reports its resident memory, the collector's counters and
how many handshake objects are still alive. At the end the server runs one full
collection and reports what it freed and how long it took.

The server is the same :class:`~cmcstream.app.App` ``cmcstream serve``
runs, with the collector tuned as ``serve`` tunes it, and with websockets'
``open_timeout`` set from ``--open-timeout`` (``serve`` keeps websockets' 10 s).
Variants, run in turns in one invocation so they share the machine's state:

- ``before``: websockets' own connection class and no collection policy, as
  the server was before ended connections were made cycle-free;
- ``collector``: websockets' connection class, with the node's
  :class:`~cmcstream.heap.Collector` (the collection policy alone);
- ``cycles``: the cycle-free connection class without the collection policy;
- ``after``: the server as it is (both).

Every collection the server runs is timed (``gc.callbacks``): each round
reports the count, total and longest pause per generation.

Loopback only. Prints a table and writes ``benchmarks/results/handshake-memory-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import procs

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("before", "collector", "cycles", "after")
PARTIAL_REQUEST = b"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


# -- the server process ------------------------------------------------------------------------


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _live(type_names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(type_names, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


class _PauseLog:
    """Every collection's duration, per generation, since the last report."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def report(self) -> dict[str, dict[str, float]]:
        out = {
            str(gen): {"count": len(ms), "total_ms": sum(ms), "max_ms": max(ms, default=0.0)}
            for gen, ms in self.pauses.items()
        }
        self.reset()
        return out


_PAUSES: _PauseLog | None = None


def _stats() -> dict[str, Any]:
    return {
        "pauses": _PAUSES.report() if _PAUSES is not None else {},
        "rss_kib": _rss_kib(),
        "gc_count": list(gc.get_count()),
        "gc_collections": [gen["collections"] for gen in gc.get_stats()],
        "tracked": len(gc.get_objects()),
        "live": _live(("ServerProtocol", "ServerConnection", "frame", "traceback", "EOFError")),
    }


def _timed_collect(generation: int) -> float:
    started = time.perf_counter()
    gc.collect(generation)
    return (time.perf_counter() - started) * 1000


def _pauses(repeat: int = 5) -> dict[str, Any]:
    """How long collections take now: the middle generation as it stands, then full ones."""
    tracked = len(gc.get_objects())
    young_ms = _timed_collect(1)
    full_ms = [_timed_collect(2) for _ in range(repeat)]
    return {
        "tracked": tracked,
        "frozen": gc.get_freeze_count(),
        "rss_kib": _rss_kib(),
        "middle_ms": young_ms,
        "full_ms": full_ms,
        "young_after_full_ms": _timed_collect(1),
    }


def _patch(variant: str) -> None:
    """For ``before`` and ``collector``, undo the connection class's fix; for ``before``
    and ``cycles``, the collector's."""
    import websockets.asyncio.server as ws_server

    from cmcstream import heap
    from cmcstream.server import gateway
    from cmcstream.server.transport import ActivityConnection

    class CyclesKept(ActivityConnection):
        def connection_lost(self, exc: Exception | None) -> None:
            ws_server.ServerConnection.connection_lost(self, exc)

    real_serve = ws_server.serve

    def serve(*args: Any, **kwargs: Any) -> Any:
        return real_serve(*args, **{**kwargs, "create_connection": CyclesKept})

    if variant in ("before", "collector"):
        gateway.serve = serve  # type: ignore[attr-defined]
    if variant in ("before", "cycles"):
        heap.Collector.tick = lambda self, now: False  # type: ignore[method-assign]


async def _serve(args: argparse.Namespace) -> None:
    from cmcstream.app import App
    from cmcstream.config import ServerConfig
    from cmcstream.server.keystore import KeyStore

    _patch(args.variant)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db if args.db is not None else Path(tmp) / "keys.db"
        config = ServerConfig(
            port=0,
            db=str(db),
            start_ms=args.start,
            tune_gc=True,
            open_timeout_s=args.open_timeout,
        )
        store = KeyStore(config.store_location)
        node = App(config, store)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        try:
            await node.start()
            global _PAUSES
            _PAUSES = _PauseLog()
            print(f"PORT {node.port}", flush=True)

            def command(line: str) -> None:
                if line == "stats":
                    reply = _stats()
                elif line == "collect":
                    before = _rss_kib()
                    started = time.perf_counter()
                    freed = gc.collect()
                    reply = {
                        "freed": freed,
                        "pause_ms": (time.perf_counter() - started) * 1000,
                        "rss_before_kib": before,
                        **_stats(),
                    }
                elif line == "pauses":
                    reply = _pauses()
                else:
                    stop.set()
                    return
                print("REPLY " + json.dumps(reply), flush=True)

            def read_stdin() -> None:
                for raw in sys.stdin:
                    loop.call_soon_threadsafe(command, raw.strip())
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=read_stdin, daemon=True).start()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await node.serve_until(stop)
        finally:
            store.close()


# -- the harness -------------------------------------------------------------------------------


@dataclasses.dataclass
class Round:
    seconds: float
    dropped: int
    stats: dict[str, Any]


async def _half_handshake(port: int, gate: asyncio.Semaphore, opened: list[int]) -> bool:
    """Connect, send part of an upgrade request, wait for the server to drop us."""
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PARTIAL_REQUEST)
        opened[0] += 1
    try:
        return await reader.read(4096) == b""
    except ConnectionError:
        return True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _ask(child: procs.Child, command: str) -> dict[str, Any]:
    await child.send(command)
    while True:
        line = await child.line(60)
        if line.startswith("REPLY "):
            reply: dict[str, Any] = json.loads(line[6:])
            return reply


async def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--serve", "--variant", variant]
    argv += ["--open-timeout", str(args.open_timeout)]
    if args.loop != "auto":
        argv += ["--loop", args.loop]
    child = await procs.spawn(
        f"server ({variant})", argv, cpu=0 if procs.can_pin() else None, stdin=True
    )
    try:
        line = await child.line(120)
        while not line.startswith("PORT "):
            line = await child.line(120)
        port = int(line.split()[1])
        rounds = [Round(0.0, 0, await _ask(child, "stats"))]
        gate = asyncio.Semaphore(256)
        for number in range(1, args.rounds + 1):
            started = time.monotonic()
            opened = [0]
            dropped = await asyncio.gather(
                *(_half_handshake(port, gate, opened) for _ in range(args.per_round))
            )
            await asyncio.sleep(0.5)
            stats = await _ask(child, "stats")
            rounds.append(Round(time.monotonic() - started, sum(dropped), stats))
            pauses = stats["pauses"]
            print(
                f"  {variant:9} round {number}: {stats['rss_kib'] / 1024:6.1f} MiB,"
                f" {stats['live']['ServerProtocol']:6d} handshakes alive,"
                f" {stats['tracked']:7d} tracked; collections (count/longest ms)"
                + "".join(
                    f" g{gen} {p['count']:3d}/{p['max_ms']:5.1f}" for gen, p in pauses.items()
                ),
                flush=True,
            )
        final = await _ask(child, "collect")
        await child.send("stop")
        await asyncio.wait_for(child.proc.wait(), 30)
    finally:
        await child.stop()
    return {
        "rounds": [dataclasses.asdict(r) for r in rounds],
        "final_collect": final,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=2000)
    parser.add_argument("--open-timeout", type=float, default=10.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="after", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in ("rounds", "per_round", "open_timeout", "loop")}
    }
    try:
        for variant in args.variants.split(","):
            print(f"{variant}:", flush=True)
            results[variant] = await run_variant(variant, args)
            final = results[variant]["final_collect"]
            print(
                f"  {variant:9} final gc.collect(): freed {final['freed']} objects in"
                f" {final['pause_ms']:.1f} ms, RSS {final['rss_before_kib'] / 1024:.1f}"
                f" -> {final['rss_kib'] / 1024:.1f} MiB",
                flush=True,
            )
    finally:
        procs.kill_all()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"handshake-memory-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {path}")


def _loop_factory(name: str) -> Any:
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    options = parse_args()
    if options.serve:
        with asyncio.Runner(loop_factory=_loop_factory(options.loop)) as runner:
            runner.run(_serve(options))
    else:
        asyncio.run(main(options))
