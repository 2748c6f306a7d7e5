"""The request flood's load generator: connections of one key that send worst-case requests.

Started with one JSON argument (its plan), it opens ``conns`` connections with the
plan's key, each until ``welcome``, and reports. Then it reads commands, one JSON
object a line, on standard input and answers each with one JSON line:

- ``go``: every connection starts flooding. It keeps ``window`` requests in
  flight: each reply (error, pong, ack) sends the next request at once. The
  requests are a subscribe to ``ids`` crypto_ids, which the subscription limit
  rejects (2303), and, one in ``nesting_every``, a ping nested ``nesting_depth``
  arrays deep. A connection the server closes is opened again (and counted), so
  the flood keeps its size whatever the server does with a request.
- ``mark``: the counters so far (requests sent and answered, replies by code,
  closes by code, reconnects), with a monotonic time stamp;
- ``quit``: drops every connection and exits.

Every wait is bounded; the process exits on its own when its input closes.
Loopback only: the plan's host must be a 127.0.0.0/8 address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from picows import WSError, WSTransport

if __package__ in (None, ""):  # run as a script: make ``fanout`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout.wsclient import Client, Stats, connect

MARKET = "market@crypto_latest_price"
_RETRY_S = 0.05  # after a refused or failed reconnect (the closed one may still hold its slot)


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def subscribe_request(ids: int) -> bytes:
    """A subscribe to ``ids`` crypto_ids of five digits each: ~59 KB for 10,000."""
    params = ",".join(str(10_000 + n) for n in range(ids))
    return b'{"id":%%d,"method":"subscribe","channel":"%s","params":{"crypto_ids":[%s]}}' % (
        MARKET.encode(),
        params.encode(),
    )


def nesting_request(depth: int) -> bytes:
    """A ping carrying an extra field nested ``depth`` arrays deep."""
    return b'{"id":%%d,"method":"ping","x":%s%s}' % (b"[" * depth, b"]" * depth)


class Totals:
    """What every connection of the flood adds to."""

    def __init__(self) -> None:
        self.sent = 0
        self.sent_bytes = 0
        self.answered = 0
        self.by_reply: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()
        self.reconnects = 0
        self.reconnect_failures = 0


class FloodClient(Client):
    """A connection that answers each reply with its next request."""

    def __init__(self, index: int, stats: Stats, flood: Flood) -> None:
        super().__init__(index, stats)
        self.flood = flood
        self.next_id = 1
        self.flooding = False

    def fill(self, count: int) -> None:
        self.flooding = True
        for _ in range(count):
            self.send_next()

    def send_next(self) -> None:
        if self.closed or not self.flood.running:
            return
        request = self.flood.request(self.next_id)
        self.next_id += 1
        self.send_text(request)
        totals = self.flood.totals
        totals.sent += 1
        totals.sent_bytes += len(request)

    def _reply(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "welcome":
            super()._reply(message)
            return
        totals = self.flood.totals
        totals.answered += 1
        if kind == "error":
            status = message.get("status")
            code = status.get("error_code") if isinstance(status, dict) else None
            totals.by_reply[f"error {code}"] += 1
        else:
            totals.by_reply[str(kind)] += 1
        if self.flooding:
            self.send_next()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        super().on_ws_disconnected(transport)
        if self.flooding and self.flood.running:
            # 1006: dropped without a close frame
            self.flood.totals.closes[self.close_code or 1006] += 1
        self.flooding = False


class Flood:
    def __init__(self, plan: dict[str, Any]) -> None:
        host = str(plan["host"])
        if not ipaddress.ip_address(host).is_loopback:
            raise SystemExit(f"refusing to load a non-loopback address: {host}")
        self.url = f"ws://{host}:{int(plan['port'])}{plan['path']}"
        self.key = str(plan["key"])
        self.conns = int(plan["conns"])
        self.window = max(1, int(plan["window"]))
        self.timeout = float(plan["connect_timeout"])
        self.nesting_every = int(plan["nesting_every"])
        self.subscribe = subscribe_request(int(plan["ids"]))
        self.nesting = nesting_request(int(plan["nesting_depth"]))
        self.stats = Stats(0, 1.0)
        self.totals = Totals()
        self.running = False
        self.clients: list[FloodClient | None] = [None] * self.conns
        self._keepers: list[asyncio.Task[None]] = []
        self._count = 0

    def request(self, rid: int) -> bytes:
        self._count += 1
        if self.nesting_every and self._count % self.nesting_every == 0:
            return self.nesting % rid
        return self.subscribe % rid

    async def open(self, index: int) -> FloodClient:
        def factory() -> FloodClient:
            return FloodClient(index, self.stats, self)

        client = await connect(index, self.stats, self.url, self.key, 0, self.timeout, factory)
        assert isinstance(client, FloodClient)
        await asyncio.wait_for(client.welcomed, self.timeout)
        return client

    async def connect_all(self) -> dict[str, Any]:
        began = time.monotonic()
        results = await asyncio.gather(
            *(self.open(i) for i in range(self.conns)), return_exceptions=True
        )
        failures = [repr(r)[:160] for r in results if isinstance(r, BaseException)]
        for i, result in enumerate(results):
            if isinstance(result, FloodClient):
                self.clients[i] = result
        return {
            "ev": "connected",
            "opened": sum(1 for c in self.clients if c is not None),
            "failed": len(failures),
            "failures": failures[:3],
            "secs": time.monotonic() - began,
        }

    def go(self) -> dict[str, Any]:
        self.running = True
        self._keepers = [
            asyncio.create_task(self._keep(i)) for i in range(self.conns) if self.clients[i]
        ]
        return {"ev": "flooding", "conns": len(self._keepers), "window": self.window}

    async def _keep(self, index: int) -> None:
        """Flood on connection ``index``, and open it again whenever the server closes it."""
        totals = self.totals
        while self.running:
            client = self.clients[index]
            if client is None or client.closed:
                try:
                    client = await self.open(index)
                except (OSError, TimeoutError, WSError, ConnectionError):
                    totals.reconnect_failures += 1
                    await asyncio.sleep(_RETRY_S)
                    continue
                self.clients[index] = client
                totals.reconnects += 1
            client.fill(self.window)
            await asyncio.shield(client.gone)

    def mark(self) -> dict[str, Any]:
        t = self.totals
        return {
            "ev": "mark",
            "t": time.monotonic(),
            "sent": t.sent,
            "sent_bytes": t.sent_bytes,
            "answered": t.answered,
            "by_reply": dict(t.by_reply),
            "closes": {str(code): n for code, n in t.closes.items()},
            "reconnects": t.reconnects,
            "reconnect_failures": t.reconnect_failures,
            "open": sum(1 for c in self.clients if c is not None and not c.closed),
        }

    async def quit(self) -> None:
        self.running = False
        for keeper in self._keepers:
            keeper.cancel()
        for client in self.clients:
            if client is not None:
                client.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._keepers, return_exceptions=True), 2.0)


async def main() -> None:
    flood = Flood(json.loads(sys.argv[1]))
    emit(await flood.connect_all())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            cmd = command.get("cmd")
            if cmd == "go":
                emit(flood.go())
            elif cmd == "mark":
                emit(flood.mark())
            elif cmd == "quit":
                break
            else:
                emit({"ev": "error", "msg": f"unknown command {cmd!r}"})
    finally:
        await flood.quit()
        emit({**flood.mark(), "ev": "quit"})


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
