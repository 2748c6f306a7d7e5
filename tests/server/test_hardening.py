"""What hostile clients and hostile conditions must not do to the server.

Each test here reproduces something a hostile client or an operator found,
over real sockets on 127.0.0.1: a request that stalled the loop, nesting that
broke the decoder, a repeated key header, a locked key store, credits that
overran, control-frame keep-alive, timestamps off the wall clock, TLS and the
browser handshake.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect

from cmcstream.protocol.billing import BillingModel
from cmcstream.protocol.session import Session
from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStore, month_of
from cmcstream.testing import running_server
from tests.server.conftest import TIMEOUT, closed_with, dial, recv_json, request, welcomed

MARKET = "market@crypto_latest_price"


def sub(ids: list[int], rid: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "method": "subscribe",
        "channel": MARKET,
        "params": {"crypto_ids": ids},
    }
    if rid is not None:
        message["id"] = rid
    return message


# -- one client must not stall the others ------------------------------------------------------


async def test_a_backlog_of_requests_does_not_hold_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server yields between requests: another client's ping is served early in a flood."""
    handled: list[str] = []
    original = Session.receive_text

    def spy(self: Session, data: str | bytes, now_ms: int) -> Any:
        handled.append("ping" if '"bystander"' in str(data) else "flood")
        return original(self, data, now_ms)

    monkeypatch.setattr(Session, "receive_text", spy)
    async with running_server(speed=1) as node:
        async with dial(node.url, node.demo_key) as bystander:
            await welcomed(bystander)
            async with dial(node.url, node.demo_key) as flooder:
                await welcomed(flooder)
                # 3,000 requests in one burst: all of them buffered at once.
                frames = [json.dumps({"id": i, "method": "nope"}) for i in range(3000)]
                sender = asyncio.gather(*(flooder.send(f) for f in frames))
                await asyncio.sleep(0)
                await bystander.send(json.dumps({"id": "bystander", "method": "ping"}))
                pong = await recv_json(bystander)
                await sender
                assert pong["type"] == "pong"
                for _ in range(3000):
                    await recv_json(flooder)
    assert "ping" in handled
    # Without a yield per request, the bystander waits behind whole read
    # buffers of the flood (hundreds of frames each).
    assert handled.index("ping") < 100, handled.index("ping")


async def test_a_huge_subscribe_is_refused_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cmcstream.protocol.channels import Selection

    def never(self: Selection) -> Any:
        raise AssertionError("subscriptions built for a request over the limit")

    monkeypatch.setattr(Selection, "subscriptions", never)
    async with running_server(speed=1) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            reply = await request(ws, sub(list(range(1, 10_001)), rid=1))
            assert reply["status"]["error_code"] == "2303"
            assert "requested=10000" in reply["status"]["error_detail"]
            unsub = {**sub(list(range(1, 10_001)), rid=2), "method": "unsubscribe"}
            assert (await request(ws, unsub))["type"] == "ack"


# -- malformed input --------------------------------------------------------------------------


async def test_deep_nesting_is_error_2201_and_the_connection_stays() -> None:
    # 984 levels broke the decoder in the field; any depth past 32 is refused.
    frames = [
        '{"id":1,"method":"ping","x":' + "[" * 984 + "]" * 984 + "}",
        '{"id":2,"method":"ping","x":' + "[" * 30_000 + "]" * 30_000 + "}",
        '{"id":3,"method":"subscribe","channel":"market@crypto_latest_price",'
        '"params":{"crypto_ids":' + "[" * 33 + "]" * 33 + "}}",
    ]
    async with running_server(speed=1) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            for frame in frames:
                await ws.send(frame)
                reply = await recv_json(ws)
                assert reply["type"] == "error"
                assert reply["status"]["error_code"] == "2201"
                assert reply["status"]["error_detail"] == "Request nests too deeply."
            assert (await request(ws, {"id": 4, "method": "ping"}))["id"] == 4


async def test_one_key_header_twice_is_served_two_different_keys_are_refused() -> None:
    async with running_server(speed=1) as node:
        other = node.store.create().key
        same = [(HEADER, node.demo_key), (HEADER, node.demo_key)]
        async with connect(node.url, additional_headers=same, open_timeout=TIMEOUT) as ws:
            await welcomed(ws)
        both = [(HEADER, node.demo_key), (HEADER, other)]
        async with connect(node.url, additional_headers=both, open_timeout=TIMEOUT) as ws:
            code, frames = await closed_with(ws)
        assert code == 4100
        assert frames == []


# -- the key store ------------------------------------------------------------------------------


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    db.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(seconds)
    db.execute("COMMIT")
    db.close()


async def test_a_locked_key_store_stalls_no_client_and_loses_no_usage(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = KeyStore(path)
    key = store.create(credits=1000).key
    probe = sqlite3.connect(path)
    assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    probe.close()
    async with running_server(
        speed=200, store=store, billing=BillingModel.PER_MESSAGE, usage_flush_s=0.2
    ) as node:
        async with dial(node.url, key) as ws:
            await welcomed(ws)
            await request(ws, sub([1, 1027, 1839]))
            locked = threading.Event()
            holder = threading.Thread(target=_hold_write_lock, args=(path, 2.0, locked))
            worst = 0.0
            pushes = 0
            for rid in range(30):  # 3 s of pings; the store is locked from 0.3 s to 2.3 s
                if rid == 3:
                    holder.start()
                # Client and server share this loop: a stall shows in the whole
                # round, sleep included, not only between ping and pong.
                started = time.monotonic()
                await ws.send(json.dumps({"id": rid, "method": "ping"}))
                while (await recv_json(ws))["type"] == "data":
                    pushes += 1
                await asyncio.sleep(0.1)
                worst = max(worst, time.monotonic() - started - 0.1)
            await asyncio.to_thread(holder.join)
            assert locked.is_set()
            assert worst < 1.0, f"a ping took {worst:.2f} s while the store was locked"
            assert pushes > 0
    reopened = KeyStore(path)
    try:
        usage = reopened.usage(key, month_of(time.time_ns() // 1_000_000))
    finally:
        reopened.close()
        store.close()
    # Everything delivered was saved once the lock was gone (shutdown flushes).
    assert usage.messages > pushes
    assert usage.milli == 25 * usage.messages


# -- credits ------------------------------------------------------------------------------------


async def test_per_subscription_credits_stop_exactly_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = KeyStore(path)
    key = store.create(credits=5).key
    async with running_server(speed=1, store=store) as node:
        async with dial(node.url, key) as ws:
            await welcomed(ws)
            # A request that costs more than the 5 credits is refused whole, before its ack.
            too_many = await request(ws, sub(list(range(1, 101)), rid=1))
            assert too_many["status"]["error_code"] == "1010"
            for cid in range(1, 51):
                assert (await request(ws, sub([cid], rid=cid)))["sub_count"] == cid
            refused = await request(ws, sub([51], rid=51))
            assert refused["type"] == "error"
            assert refused["status"]["error_code"] == "1010"
            assert (await request(ws, {"id": 99, "method": "ping"}))["type"] == "pong"
    usage = store.usage(key, month_of(time.time_ns() // 1_000_000))
    store.close()
    assert usage.milli == 5000
    assert usage.credits_text == "5"


async def test_per_message_credits_deliver_exactly_what_was_paid(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = KeyStore(path)
    key = store.create(credits=5).key  # 200 pushes at 0.025
    async with running_server(speed=500, store=store, billing=BillingModel.PER_MESSAGE) as node:
        async with dial(node.url, key) as one, dial(node.url, key) as two:
            await welcomed(one)
            await welcomed(two)
            await request(one, sub(list(range(1, 51))))
            await request(two, sub(list(range(1, 51))))
            (code_one, frames_one), (code_two, frames_two) = await asyncio.gather(
                closed_with(one, 20), closed_with(two, 20)
            )
    assert (code_one, code_two) == (1000, 1000)
    data = [f for f in frames_one + frames_two if f["type"] == "data"]
    assert len(data) == 200
    for frames in (frames_one, frames_two):
        assert frames[-1]["status"]["error_code"] == "1010"
    usage = store.usage(key, month_of(time.time_ns() // 1_000_000))
    store.close()
    assert (usage.milli, usage.messages) == (5000, 200)


# -- keep-alive and clocks -----------------------------------------------------------------------


async def test_control_pings_count_as_client_activity() -> None:
    async with running_server(speed=1, idle_timeout_s=1.0) as node:
        headers = {HEADER: node.demo_key}
        async with connect(
            node.url, additional_headers=headers, ping_interval=0.2, open_timeout=TIMEOUT
        ) as ws:
            await welcomed(ws)
            await asyncio.sleep(2.5)  # no JSON frame and no push: only control pings
            assert (await request(ws, {"id": 1, "method": "ping"}))["type"] == "pong"


async def test_wire_times_are_wall_clock_whatever_the_simulated_time() -> None:
    simulated_start = 1_577_836_800_000  # 2020-01-01
    async with running_server(speed=100, start_ms=simulated_start) as node:
        async with dial(node.url, node.demo_key) as ws:
            welcome = await welcomed(ws)
            pong = await request(ws, {"id": 1, "method": "ping"})
            error = await request(ws, {"id": 2, "method": "nope"})
            await request(ws, sub([1]))
            push = await recv_json(ws)
            platform, token = 14, node.world.busiest_token(14).address
            await request(
                ws,
                {
                    "method": "subscribe",
                    "channel": "onchain@transaction",
                    "params": {"platform_id": platform, "address": [token]},
                },
            )
            while (swap := await recv_json(ws))["channel"] != "onchain@transaction":
                pass
    now = time.time() * 1000
    for ts in (welcome["ts"], pong["ts"], push["ts"], swap["ts"]):
        assert abs(ts - now) < 60_000
    stamp = error["status"]["timestamp"]
    assert stamp.startswith(time.strftime("%Y-%m-%d", time.gmtime(now / 1000))[:4])
    # Simulated time lives in the payload's own fields.
    assert swap["data"]["ts"] < simulated_start + 86_400_000


# -- TLS and browsers ----------------------------------------------------------------------------


async def test_wss_with_a_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    async with running_server(speed=100, tls_cert=cert_path, tls_key=key_path) as node:
        assert node.url.startswith("wss://")
        async with dial(node.url, node.demo_key, ssl=client_tls) as ws:
            await welcomed(ws)
            await request(ws, sub([1]))
            assert (await recv_json(ws))["type"] == "data"


async def test_a_browser_handshake_gets_its_subprotocol_and_no_deflate() -> None:
    async with running_server(speed=100) as node:
        url = f"{node.url}?CMC_PRO_API_KEY={node.demo_key}"
        async with connect(url, subprotocols=["json"], open_timeout=TIMEOUT) as ws:
            assert ws.subprotocol == "json"
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await welcomed(ws)
            await request(ws, sub([1]))
            assert (await recv_json(ws))["type"] == "data"
