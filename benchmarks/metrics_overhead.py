"""What ``/metrics`` costs the fan-out: the gateway's push path in one process, metrics on and off.

The hub, the flush scheduler and one outbox per connection, as the gateway
wires them, with transports that take each write and drop it: what is left is
the CPU the server spends per push between a published frame and its write,
without the sockets and the load generator that make the end-to-end suite
(``run.py --set metrics=0``) noisy on a shared machine. With metrics on, the
hub hands a sample of frames to the push-latency histogram and the scheduler
settles it after each pass, as ``Gateway`` does. (The per-write byte count is
kept either way: it is what ``bytes_sent`` reads.)

Rounds alternate on and off; the figure is the median CPU ns per push of each,
and the overhead between them. Prints it and writes
``benchmarks/results/metrics-overhead-<UTC time>.json``; ``--compare FILE``
prints the change against an earlier result file. ``--quick`` is a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from websockets.protocol import State

from cmcstream.bus.memory import MemoryBus
from cmcstream.clock import SystemClock
from cmcstream.config import WriterPolicy
from cmcstream.protocol import codec
from cmcstream.protocol.channels import Subscription, make_topic
from cmcstream.server.hub import Hub
from cmcstream.server.metrics import PushLatency
from cmcstream.server.writer import FlushScheduler, Outbox

RESULTS = Path(__file__).resolve().parent / "results"
CHANNEL = "market@crypto_latest_price"


class NullTransport(asyncio.WriteTransport):
    """Takes every write and keeps nothing: a reader that always keeps up."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


class OpenProtocol:
    state = State.OPEN


def build(loop: asyncio.AbstractEventLoop, conns: int, ids: int, metrics: bool) -> tuple[Any, ...]:
    hub = Hub(MemoryBus())
    scheduler = FlushScheduler(loop)
    hub.on_fanout = scheduler.fanout
    hub.on_batch_end = scheduler.flush
    if metrics:
        latency = PushLatency(SystemClock())
        hub.on_sample = latency.mark
        scheduler.after_fanout = latency.settle
    subs = [Subscription(make_topic(CHANNEL, i), CHANNEL, {"crypto_ids": i}) for i in range(ids)]
    outboxes = []
    for _ in range(conns):
        outbox = Outbox(
            NullTransport(),
            OpenProtocol(),  # type: ignore[arg-type]
            scheduler,
            WriterPolicy(),
            lambda _: None,
        )
        hub.add(outbox, subs)
        outboxes.append(outbox)
    prefix = codec.data_prefix(CHANNEL, {"crypto_ids": 1})
    payload = {"cid": 1, "p": 81166.30372157045, "vu": 30155524021.29, "mc": 1625656034346.04}
    return hub, scheduler, [s.topic for s in subs], prefix, payload, outboxes


def round_ns_per_push(
    loop: asyncio.AbstractEventLoop, conns: int, ids: int, ticks: int, metrics: bool
) -> float:
    hub, scheduler, topics, prefix, payload, outboxes = build(loop, conns, ids, metrics)
    started = time.process_time_ns()
    for _ in range(ticks):
        ts = time.time_ns() // 1_000_000
        for topic in topics:
            hub.deliver(topic, codec.encode_data(prefix, payload, ts))
        scheduler.flush()
    spent = time.process_time_ns() - started
    pushes = sum(outbox.data_sent for outbox in outboxes)
    assert pushes == conns * ids * ticks, (pushes, conns * ids * ticks)
    return spent / pushes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each, alternating")
    parser.add_argument("--quick", action="store_true", help="small and short")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--compare", type=Path, help="an earlier result file")
    args = parser.parse_args(argv)
    if args.quick:
        args.conns, args.ids, args.ticks, args.rounds = 100, 20, 5, 2
    loop = asyncio.new_event_loop()
    runs: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                ns = round_ns_per_push(loop, args.conns, args.ids, args.ticks, mode == "on")
                runs[mode].append(ns)
    finally:
        loop.close()
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    overhead_pct = (on - off) / off * 100
    result = {
        "benchmark": "metrics-overhead",
        "settings": {k: getattr(args, k) for k in ("conns", "ids", "ticks", "rounds", "quick")},
        "ns_per_push": runs,
        "median_ns_per_push": {"on": on, "off": off},
        "overhead_pct": overhead_pct,
        "python": sys.version.split()[0],
    }
    print(f"fan-out CPU per push: metrics on {on:.1f} ns, off {off:.1f} ns")
    print(f"metrics overhead: {overhead_pct:+.2f} % (median of {args.rounds} alternating rounds)")
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        print(f"  reference {args.compare.name}: {before['overhead_pct']:+.2f} %")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out_dir / f"metrics-overhead-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
