"""What the client costs: per received push, and per reconnect with 100 subscriptions.

1. **Per push.** Real ``data`` frames (market and on-chain swaps, built by the
   server's own encoder) go through the client's receive path (envelope decode,
   typed payload decode, dedupe, the bounded buffer, and the consumer taking
   it) without sockets. The baseline is one plain ``msgspec.json.decode`` of
   the same frame, the least any Python consumer pays for it.
2. **Reconnect.** An in-process server on 127.0.0.1; a client holding 100
   subscriptions; the server cuts the connection (close 1011); the time until
   the client is subscribed again (state ``open``), with the backoff delay set
   to zero so the figure is the reconnect itself: TCP and WebSocket handshake,
   key check, welcome, and re-subscribing. Then the same with the default
   backoff, which adds a random delay of up to 0.5 s.

Prints the figures and writes them to ``benchmarks/results/client-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

import cmcstream
from cmcstream.client import Backoff, ConnectionState, StateChange, Stream
from cmcstream.client.frames import Numbers
from cmcstream.protocol.codec import data_prefix, encode_data
from cmcstream.protocol.codes import CloseCode
from cmcstream.protocol.payloads import CryptoLatestPrice, Transaction
from cmcstream.testing import running_server

RESULTS = Path(__file__).parent / "results"


def market_frames(n: int) -> list[bytes]:
    return [
        encode_data(
            data_prefix("market@crypto_latest_price", {"crypto_ids": 1 + i % 500}),
            CryptoLatestPrice(
                1 + i % 500,
                81187.93284788371 + i,
                29932025976.79,
                1626089237758.01,
                20028706,
                0.5343,
                -0.7696,
                14.8258,
                14.8958,
                20.8140,
                -21.1467,
                -8.2804,
                131301167.42,
                0.5343,
            ),
            1778663880111 + i,
        )
        for i in range(n)
    ]


def swap_frames(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        swap = Transaction(
            pid=14,
            f="0xdb1d10011ad0ff90774d0c6bb92e5c5c8b4461f7",
            bh=98011237 + i,
            tp="sell",
            pa="0x2f4a644cd20eb9f45fa166dbb87068697fe8e6e3",
            t0a="0x5feccd17c393caf1001d18164236a37e731fcb9d",
            t1a="0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c",
            t0s="TKN",
            t1s="WBNB",
            vu=1234.56 + i,
            q=0.5,
            t0pu=0.0123,
            t1pu=612.3,
            tx=f"0x{i:064x}",
            ts=1778659194000 + i,
            ma="0x9" + "0" * 39,
            ba="0x2" + "0" * 39,
            a0=100000.0 + i,
            a1=2.01,
            qi=1,
            tii=0,
            lgid=i % 7,
            ex=True,
            txtp=0,
        )
        prefix = data_prefix("onchain@transaction", {"platform_id": 14, "address": swap.t0a})
        out.append(encode_data(prefix, swap, 1778659194100 + i))
    return out


async def client_path(frames: list[str], numbers: Numbers, raw: bool) -> float:
    """Seconds for the client's whole receive path over ``frames``, consumer included.

    The same calls a connection's reader makes for each text frame, then the
    application's ``recv``.
    """
    stream = Stream(
        "bench", "ws://127.0.0.1:9/v1", numbers=numbers, raw=raw, buffer_size=len(frames) + 1
    )
    decoder = stream.decoder
    started = time.perf_counter()
    for frame in frames:
        received = time.time()
        push = decoder.data(frame, received)
        if push is None:
            env = decoder.envelope(frame)
            assert env is not None
            push = decoder.push(env, received)
            assert push is not None
        if not stream.deliver_nowait(push):
            await stream.deliver(push)
        await stream.recv()
    return time.perf_counter() - started


def baseline(frames: list[str]) -> float:
    decode = msgspec.json.decode
    started = time.perf_counter()
    for frame in frames:
        decode(frame)
    return time.perf_counter() - started


async def per_push(n: int, runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, encoded in (("market", market_frames(n)), ("swap", swap_frames(n))):
        frames = [frame.decode() for frame in encoded]  # text frames arrive as str
        base = statistics.median(baseline(frames) for _ in range(runs)) / n * 1e6
        results[f"{name}_baseline_us"] = round(base, 2)
        for label, numbers, raw in (
            ("typed_float", "float", False),
            ("typed_decimal", "decimal", False),
            ("raw_float", "float", True),
        ):
            times = [await client_path(frames, numbers, raw) for _ in range(runs)]  # type: ignore[arg-type]
            us = statistics.median(times) / n * 1e6
            results[f"{name}_{label}_us"] = round(us, 2)
            results[f"{name}_{label}_over_baseline_us"] = round(us - base, 2)
    return results


async def reconnect(subs: int, rounds: int, backoff: Backoff) -> list[float]:
    """Seconds from the cut to the client's subscriptions being active again.

    Each round uses a fresh stream, so every cut is a first failure after a
    stable connection (back-to-back cuts would grow the backoff on purpose).
    """
    times = []
    async with running_server(speed=1) as node:
        for _ in range(rounds):
            reopened = asyncio.Event()

            def watch(change: StateChange, reopened: asyncio.Event = reopened) -> None:
                if change.state is ConnectionState.OPEN and change.outage is not None:
                    reopened.set()

            async with cmcstream.connect(
                node.demo_key, node.url, backoff=backoff, on_state=watch
            ) as stream:
                await stream.subscribe(
                    "market@crypto_latest_price", crypto_ids=list(range(1, subs + 1))
                )
                cut = time.perf_counter()
                for group in list(node.connections.values()):
                    for conn in list(group):
                        conn.close(CloseCode.SEND_FAILURE)
                await asyncio.wait_for(reopened.wait(), 30)
                times.append(time.perf_counter() - cut)
                assert node.hub.topic_count == subs
            await asyncio.sleep(0.05)  # the server forgets the closed connection
    return times


def summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
        "runs": len(ms),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="reconnects measured")
    parser.add_argument("--subs", type=int, default=100)
    args = parser.parse_args()

    pushes = await per_push(args.pushes, args.runs)
    print(f"per push, µs (median of {args.runs} runs of {args.pushes:,} frames):")
    for key, value in pushes.items():
        print(f"  {key:<40} {value:8.2f}")
    immediate = summary(await reconnect(args.subs, args.rounds, Backoff(base_s=0.0, cap_s=0.0)))
    default = summary(await reconnect(args.subs, args.rounds, Backoff()))
    print(f"reconnect with {args.subs} subscriptions, cut to re-subscribed:")
    print(f"  no backoff delay     {immediate}")
    print(f"  default backoff      {default}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"client-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine(),
                },
                "args": vars(args),
                "per_push": pushes,
                "reconnect_no_delay": immediate,
                "reconnect_default_backoff": default,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    asyncio.run(main())
