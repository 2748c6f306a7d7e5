"""The load generator: N WebSocket connections in one process, driven phase by phase.

Started with one JSON argument (its plan), it opens its connections, a bounded
number at a time, each until ``welcome``, and reports. Then it reads commands,
one JSON object a line, on standard input and answers each with one JSON line on
standard output:

- ``calibrate``: pings the server on quiet connections and keeps the pong with
  the shortest round trip, to map the server's ``ts`` (simulated ms) onto this
  machine's monotonic clock;
- ``subscribe``: sends every connection's subscribe requests, waits for the acks;
- ``measure``: counts pushes (and their latencies) for a number of seconds;
- ``slow`` / ``resume``: stop and restart reading on the slow readers;
- ``quit``: drops every connection and exits.

Every wait is bounded; the process exits on its own when its input closes.
Loopback only: the plan's host must be a 127.0.0.0/8 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from picows import WSError

if __package__ in (None, ""):  # run as a script: make ``fanout`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout.wsclient import Client, Stats, connect

MARKET = "market@crypto_latest_price"


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class LoadGen:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        host = str(plan["host"])
        if not ipaddress.ip_address(host).is_loopback:
            raise SystemExit(f"refusing to load a non-loopback address: {host}")
        self.stats = Stats(int(plan["start_ms"]), float(plan["speed"]))
        self.clients: list[Client] = []
        self.slow: list[Client] = []
        keys = Path(plan["keys_file"]).read_text().split()
        per_key = int(plan["conns_per_key"])
        first = int(plan.get("first_index", 0))
        self.indices = range(first, first + int(plan["conns"]))
        self.keys = {i: keys[i // per_key] for i in self.indices}
        self.url = f"ws://{host}:{int(plan['port'])}{plan['path']}"

    # -- phases ------------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        plan = self.plan
        gate = asyncio.Semaphore(int(plan["parallel"]))
        slow_every = int(plan.get("slow_every", 0))
        rcvbuf = int(plan.get("slow_rcvbuf", 0))
        timeout = float(plan["connect_timeout"])
        welcome_ms: list[float] = []
        failures: list[str] = []

        async def one(i: int) -> None:
            slow = bool(slow_every) and i % slow_every == slow_every - 1
            async with gate:
                started = time.monotonic()
                try:
                    client = await connect(
                        i, self.stats, self.url, self.keys[i], rcvbuf if slow else 0, timeout
                    )
                    welcomed = await asyncio.wait_for(client.welcomed, timeout)
                except (OSError, TimeoutError, WSError) as exc:
                    failures.append(repr(exc)[:160])
                    return
            welcome_ms.append((welcomed - started) * 1000)
            self.clients.append(client)
            if slow:
                self.slow.append(client)

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in self.indices))
        elapsed = time.monotonic() - began
        self.clients.sort(key=lambda c: c.index)
        return {
            "ev": "connected",
            "opened": len(self.clients),
            "failed": len(failures),
            "failures": failures[:5],
            "secs": elapsed,
            "conn_per_s": len(self.clients) / elapsed if elapsed > 0 else 0.0,
            "welcome_ms": [round(ms, 3) for ms in welcome_ms],
        }

    async def calibrate(self, pings: int) -> dict[str, Any]:
        stats = self.stats
        best: tuple[float, float] | None = None  # (round trip µs, offset µs)
        for n, client in enumerate(self.clients[:pings]):
            client.pong = asyncio.get_running_loop().create_future()
            sent = time.monotonic()
            client.send_text(b'{"id":%d,"method":"ping"}' % (1_000_000 + n))
            received, ts = await asyncio.wait_for(client.pong, 5.0)
            client.pong = None
            rtt = (received - sent) * 1e6
            # The pong left halfway through the round trip; ts floors simulated ms.
            offset = (sent + received) / 2 * 1e6 - (ts - stats.start_ms + 0.5) * stats.us_per_sim_ms
            if best is None or rtt < best[0]:
                best = (rtt, offset)
            await asyncio.sleep(0.002)
        if best is None:
            raise RuntimeError("no connection to calibrate on")
        stats.offset_us = best[1]
        return {"ev": "calibrated", "rtt_us": best[0], "pings": min(pings, len(self.clients))}

    def requests_of(self, client: Client) -> list[bytes]:
        plan = self.plan["subscribe"]
        if plan["kind"] == "market":
            rng = random.Random(int(plan["seed"]) * 1_000_003 + client.index)
            ids = rng.sample(plan["ids"], int(plan["ids_per_conn"]))
            request = {
                "id": 1,
                "method": "subscribe",
                "channel": MARKET,
                "params": {"crypto_ids": ids},
            }
            return [json.dumps(request, separators=(",", ":")).encode()]
        out = []
        for n, (channel, extra) in enumerate(plan["channels"], start=1):
            params = {"platform_id": plan["platform_id"], "address": [plan["address"]], **extra}
            request = {"id": n, "method": "subscribe", "channel": channel, "params": params}
            out.append(json.dumps(request, separators=(",", ":")).encode())
        return out

    async def subscribe(self, within_s: float) -> dict[str, Any]:
        began = time.monotonic()
        count_every = int(self.plan.get("parse_every", 1))
        waiters = []
        for client in self.clients:
            requests = self.requests_of(client)
            waiters.append(client.expect_acks(len(requests)))
            for request in requests:
                client.send_text(request)
        results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), within_s)
        failed = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
        if count_every > 1:
            slow = {id(c) for c in self.slow}
            for client in self.clients:
                # Slow readers always parse: their close frames are what they report.
                if client.index % count_every and id(client) not in slow:
                    client.count_only()
        return {
            "ev": "subscribed",
            "acked": len(results) - len(failed),
            "failed": len(failed),
            "failures": failed[:3],
            "errors": dict(self.stats.errors),
            "secs": time.monotonic() - began,
            "parsing": sum(1 for c in self.clients if not c.counting),
        }

    async def measure(self, seconds: float, latency: bool) -> dict[str, Any]:
        stats = self.stats
        slow = {id(c) for c in self.slow}
        healthy = [c for c in self.clients if id(c) not in slow]
        before = {id(c): c.pushes for c in self.clients}
        pushes0, bytes0, audited0 = stats.pushes, stats.bytes, stats.audited
        stats.reset_latency()
        stats.recording = latency
        cpu0, began = os.times(), time.monotonic()
        await asyncio.sleep(seconds)
        stats.recording = False
        cpu1, elapsed = os.times(), time.monotonic() - began
        rates = sorted((c.pushes - before[id(c)]) / elapsed for c in healthy)
        healthy_pushes = sum(c.pushes - before[id(c)] for c in healthy)
        slow_pushes = sum(c.pushes - before[id(c)] for c in self.slow)
        return {
            "ev": "measured",
            "secs": elapsed,
            "pushes": stats.pushes - pushes0,
            "bytes": stats.bytes - bytes0,
            "healthy_pushes": healthy_pushes,
            "slow_pushes": slow_pushes,
            "healthy_conns": len(healthy),
            "open_conns": sum(1 for c in self.clients if not c.closed),
            "conn_rate_min": rates[0] if rates else 0.0,
            "conn_rate_median": statistics.median(rates) if rates else 0.0,
            "conn_rate_max": rates[-1] if rates else 0.0,
            "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "lat_count": stats.lat_count,
            "lat_negative": stats.lat_negative,
            "hist": stats.sparse_hist() if latency else [],
            "audited": stats.audited - audited0,
            "audit_bad": stats.audit_bad,
            "ts_fallback": stats.ts_fallback,
            "errors": dict(stats.errors),
        }

    def slow_down(self) -> dict[str, Any]:
        for client in self.slow:
            client.pause_reading()
        return {"ev": "slowed", "slow": len(self.slow)}

    async def resume(self, drain: float) -> dict[str, Any]:
        for client in self.slow:
            client.resume_reading()
        open_ones = [c.gone for c in self.slow if not c.closed]
        if open_ones:
            await asyncio.wait(open_ones, timeout=drain)
        codes: dict[str, int] = {}
        for client in self.slow:
            key = (
                str(client.close_code)
                if client.close_code is not None
                else ("lost" if client.closed else "open")
            )
            codes[key] = codes.get(key, 0) + 1
        slow = {id(c) for c in self.slow}
        healthy_closed = sum(1 for c in self.clients if c.closed and id(c) not in slow)
        return {"ev": "resumed", "slow_close": codes, "healthy_closed": healthy_closed}

    def quit(self) -> None:
        for client in self.clients:
            client.abort()


async def main(plan: dict[str, Any]) -> None:
    try:
        import uvloop  # noqa: F401  (only to report it)

        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    gen = LoadGen(plan)
    event = await gen.connect()
    event["loop"] = loop_name
    emit(event)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        name = command["cmd"]
        try:
            if name == "calibrate":
                emit(await gen.calibrate(int(command.get("pings", 32))))
            elif name == "subscribe":
                emit(await gen.subscribe(float(command.get("timeout", 60))))
            elif name == "measure":
                emit(await gen.measure(float(command["seconds"]), bool(command.get("latency"))))
            elif name == "slow":
                emit(gen.slow_down())
            elif name == "resume":
                emit(await gen.resume(float(command.get("drain", 3))))
            elif name == "quit":
                break
            else:
                emit({"ev": "error", "msg": f"unknown command {name}"})
        except Exception as exc:  # reported, then the next command
            emit({"ev": "error", "msg": f"{name}: {exc!r}"[:500]})
    gen.quit()
    emit({"ev": "bye"})


def run() -> None:
    plan = json.loads(sys.argv[1])
    try:
        import uvloop

        uvloop.run(main(plan))
    except ImportError:
        asyncio.run(main(plan))


if __name__ == "__main__":
    run()
