"""Idle timeout and keep-alive, credits, slow readers, key changes and shutdown (§3, §7, §12)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from cmcstream.config import WriterPolicy
from cmcstream.protocol.billing import BillingModel
from cmcstream.server.keystore import KeyStore
from cmcstream.testing import running_server
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed

MARKET = "market@crypto_latest_price"


def sub(ids: list[int]) -> dict[str, object]:
    return {"id": 1, "method": "subscribe", "channel": MARKET, "params": {"crypto_ids": ids}}


async def test_idle_connection_is_closed_with_1001() -> None:
    async with running_server(speed=100, idle_timeout_s=0.3) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            started = time.monotonic()
            code, frames = await closed_with(ws)
            assert code == 1001
            assert frames == []
            assert 0.25 < time.monotonic() - started < 2.0


# A second of idle timeout leaves room for a machine that stalls the server's loop for a
# few hundred ms; each test still runs well past it.


async def test_json_pings_keep_a_connection_alive() -> None:
    async with running_server(speed=100, idle_timeout_s=1.0) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            for rid in range(12):  # 2.4 s
                assert (await request(ws, {"id": rid, "method": "ping"}))["type"] == "pong"
                await asyncio.sleep(0.2)
            assert (await request(ws, {"id": 99, "method": "ping"}))["id"] == 99


async def test_pushes_keep_a_connection_alive() -> None:
    async with running_server(speed=100, idle_timeout_s=1.0) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            await request(ws, sub([1]))
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                assert (await recv_json(ws))["type"] == "data"


async def test_credit_exhaustion_per_subscription() -> None:
    async with running_server(speed=100) as node:
        key = node.store.create(credits=0.25).key  # 0.1 per subscription
        async with dial(node.url, key) as ws:
            await welcomed(ws)
            assert (await request(ws, sub([1, 1027])))["sub_count"] == 2
            # 0.05 left: the next subscription is refused before it is acked, and
            # the connection keeps what it paid for.
            refused = await request(ws, {**sub([5426]), "id": 7})
            assert refused["type"] == "error"
            assert refused["id"] == 7
            assert refused["status"]["error_code"] == "1010"
            assert refused["status"]["error_message"] == "Monthly credit limit exceeded."
            assert (await request(ws, {"id": 8, "method": "ping"}))["type"] == "pong"
            assert {(await recv_json(ws))["params"]["crypto_ids"] for _ in range(4)} <= {1, 1027}
        # Less than one subscription's price left: the next connection is refused.
        async with dial(node.url, key) as ws:
            code, frames = await closed_with(ws)
        assert code == 1000
        assert [f["status"]["error_code"] for f in frames] == ["1010"]
        assert "id" not in frames[0]


async def test_credit_exhaustion_per_message_and_usage_survives_restart(tmp_path: object) -> None:
    path = f"{tmp_path}/keys.db"
    store = KeyStore(path)
    key = store.create(credits=0.1).key  # 4 pushes at 0.025
    async with running_server(speed=100, store=store, billing=BillingModel.PER_MESSAGE) as node:
        async with dial(node.url, key) as ws:
            await welcomed(ws)
            await request(ws, sub([1]))
            code, frames = await closed_with(ws)
        assert code == 1000
        assert frames[-1]["status"]["error_code"] == "1010"
        assert sum(1 for f in frames if f["type"] == "data") >= 4
    store.close()
    reopened = KeyStore(path)
    try:
        from cmcstream.server.keystore import month_of

        usage = reopened.usage(key, month_of(time.time_ns() // 1_000_000))
        assert usage.messages >= 4
        assert usage.credits >= 0.1
    finally:
        reopened.close()


async def test_key_disabled_while_connected_is_closed_4101() -> None:
    async with running_server(speed=100, key_recheck_s=0.2) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            node.store.set_status(node.demo_key, "disabled")
            code, _ = await closed_with(ws)
        assert code == 4101


async def test_slow_reader_is_collapsed_then_closed_and_others_keep_pace() -> None:
    policy = WriterPolicy(soft_limit_bytes=16 * 1024, hard_limit_bytes=8 << 20, slow_timeout_s=1.0)
    async with running_server(speed=400, writer=policy, close_timeout_s=0.3) as node:
        top = [asset.cid for asset in node.simulator.universe.assets[:100]]
        # A tiny receive window and a client that never reads: the server's buffer fills.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.port))
        async with (
            dial(node.url, node.demo_key) as healthy,
            dial(node.url, node.demo_key, sock=sock, max_queue=1, close_timeout=0.5) as slow,
        ):
            await welcomed(healthy)
            await welcomed(slow)
            await slow.send(json.dumps(sub(top)))
            slow.transport.pause_reading()  # reads nothing more, not even a close frame
            await request(healthy, sub([1]))
            conns = [c for group in node.connections.values() for c in group]
            slow_conn = next(c for c in conns if c.session.sub_count == 100)
            healthy_conn = next(c for c in conns if c is not slow_conn)
            received = 0
            started = time.monotonic()
            ticks, sent = node.engine.statistics()["ticks"], healthy_conn.outbox.data_sent
            while node.slow_closed == 0 and time.monotonic() - started < 15:
                frame = await recv_json(healthy)
                received += frame["type"] == "data"
            ticks = node.engine.statistics()["ticks"] - ticks
            sent = healthy_conn.outbox.data_sent - sent
            assert node.slow_closed == 1
            assert slow_conn.closing
            assert slow_conn.outbox.data_dropped > 0  # collapsed before it was closed
            # Every tick that ran meanwhile wrote its push to the healthy reader,
            # uncollapsed (counted in ticks, not seconds: a busy machine runs fewer).
            assert ticks >= 10
            assert sent >= ticks - 1, (sent, ticks)
            assert healthy_conn.outbox.data_dropped == 0
            assert received > 0
            assert (await request(healthy, {"id": 5, "method": "ping"}))["type"] == "pong"
            # It never reads its close frame either: the server drops it after
            # the close timeout instead of holding its buffers forever.
            deadline = time.monotonic() + 5
            while slow_conn in node.connections.get(node.demo_key, ()) and (
                time.monotonic() < deadline
            ):
                await recv_json(healthy)
            assert slow_conn not in node.connections.get(node.demo_key, ())
            assert node.health()["slow_closed"] == 1
        assert node.hub.subscriber_count("market@crypto_latest_price|2") == 0


async def test_graceful_shutdown_closes_everyone_with_1001() -> None:
    async with running_server(speed=100) as node:
        clients = [await dial(node.url, node.demo_key).__aenter__() for _ in range(3)]
        for ws in clients:
            await welcomed(ws)
        await request(clients[0], sub([1]))
        started = time.monotonic()
        await node.shutdown()
        assert time.monotonic() - started < node.config.shutdown_timeout_s
        for ws in clients:
            code, _ = await closed_with(ws)
            assert code == 1001
