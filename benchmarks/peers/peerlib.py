"""What the Python peers share: the frames, the simulated clock, the tick schedule, the replies.

A peer speaks just enough of the protocol for the load generator: ``welcome`` on
connect (when the ``X-CMC_PRO_API_KEY`` header is there), ``ack`` for
``market@crypto_latest_price`` subscriptions, ``pong`` for ``ping``, and the
market pushes of cmcstream's own frames (``--frames``, written by the harness),
on cmcstream's schedule: every id of the top 500 each cadence of simulated time,
``--speed`` times faster than real time, skipping to the latest tick when it
falls more than a cadence behind. ``ts`` is the wall-clock send time, as in
cmcstream, so the same latency calibration applies.

With ``--hold``, ticks start only on SIGUSR2, which the harness sends once every
subscription is acked: a naive peer's tick can block its event loop for tens of
seconds, and subscribing behind it would only lengthen the run, not change what
is measured afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = [
    "MARKET",
    "Frames",
    "SimClock",
    "Subscriptions",
    "handle_request",
    "parse_args",
    "ready",
    "text_frame",
    "tick_forever",
    "welcome",
]

MARKET: Final = "market@crypto_latest_price"
SUB_LIMIT: Final = 100


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--frames", type=Path, required=True, help="templates from the harness")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--start", type=int, required=True, help="simulated start, epoch ms")
    parser.add_argument("--hold", action="store_true", help="tick only after SIGUSR2")
    return parser.parse_args()


def ready(port: int) -> None:
    print(f"READY port={port} pid={os.getpid()}", flush=True)


class SimClock:
    """cmcstream's simulated clock: ``start`` at creation, ``speed`` times real time."""

    def __init__(self, start_ms: int, speed: float) -> None:
        self.start_ms = start_ms
        self.speed = speed
        self._origin = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._origin) * self.speed * 1000.0)

    def wall_delay(self, sim_ms: float) -> float:
        return max(sim_ms, 0.0) / 1000.0 / self.speed


class Frames:
    """The market frame heads per id (text up to ``"ts":``), as bytes."""

    def __init__(self, path: Path) -> None:
        document = json.loads(path.read_text())
        self.cadence_ms = int(document["cadence_ms"])
        self.ids = [int(cid) for cid in document["ids"]]
        self.heads = {int(cid): head.encode() for cid, head in document["heads"].items()}

    def push(self, cid: int, ts: bytes) -> bytes:
        return b"".join((self.heads[cid], ts, b"}"))


_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked server text frame."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _pack_short(0x81, 126, size) + payload
    return _pack_long(0x81, 127, size) + payload


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def welcome(clock: SimClock) -> bytes:
    return _json({"type": "welcome", "ping_interval_ms": 10000, "ts": clock.now_ms()})


class Subscriptions:
    """Market ids to subscribers; a subscriber is any hashable connection object."""

    def __init__(self, known: list[int]) -> None:
        self.known = set(known)
        self.by_id: dict[int, dict[Any, None]] = {}
        self.of: dict[Any, set[int]] = {}

    def add(self, conn: Any, ids: list[int]) -> int:
        mine = self.of.setdefault(conn, set())
        for cid in ids:
            if cid not in mine:
                mine.add(cid)
                self.by_id.setdefault(cid, {})[conn] = None
        return len(mine)

    def drop(self, conn: Any) -> None:
        for cid in self.of.pop(conn, ()):
            subscribers = self.by_id.get(cid)
            if subscribers is not None:
                subscribers.pop(conn, None)
                if not subscribers:
                    del self.by_id[cid]


def handle_request(
    raw: bytes | str, conn: Any, subs: Subscriptions, clock: SimClock
) -> bytes | None:
    """The reply to one client request (JSON text), or None."""
    try:
        request = json.loads(raw)
    except ValueError:
        return _json(
            {"type": "error", "code": 2201, "msg": "Invalid request.", "ts": clock.now_ms()}
        )
    method = request.get("method")
    req_id = request.get("id")
    if method == "ping":
        return _json({"type": "pong", "id": req_id, "code": 0, "ts": clock.now_ms()})
    if method == "subscribe" and request.get("channel") == MARKET:
        ids = request.get("params", {}).get("crypto_ids", [])
        ids = [ids] if isinstance(ids, int) else [cid for cid in ids if cid in subs.known]
        count = subs.add(conn, ids)
        return _json(
            {
                "type": "ack",
                "id": req_id,
                "code": 0,
                "msg": "ok",
                "channel": MARKET,
                "sub_count": count,
                "sub_limit": SUB_LIMIT,
            }
        )
    return _json(
        {
            "type": "error",
            "id": req_id,
            "code": 2301,
            "msg": "Unknown channel.",
            "ts": clock.now_ms(),
        }
    )


async def tick_forever(
    clock: SimClock, cadence_ms: int, publish: Callable[[int], None], hold: bool = False
) -> None:
    """Call ``publish(now_ms)`` every ``cadence_ms`` of simulated time, as cmcstream does."""
    if hold:
        released = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, released.set)
        await released.wait()
    now = clock.now_ms()
    due = now - now % cadence_ms + cadence_ms
    while True:
        await asyncio.sleep(clock.wall_delay(due - clock.now_ms()))
        now = clock.now_ms()
        if now - due > cadence_ms:
            due = now - now % cadence_ms
        # ``ts`` is the wall-clock send time, as cmcstream stamps it.
        publish(time.time_ns() // 1_000_000)
        due += cadence_ms
