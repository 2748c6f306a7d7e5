"""Every request error reachable from the wire, limits, duplicates and unsubscribes (§13)."""

from __future__ import annotations

import json
from typing import Any

from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed

BSC_USDT = "0x55d398326f99059ff775485246999027b3197955"


def sub(ids: Any, rid: int = 1) -> dict[str, Any]:
    return {
        "id": rid,
        "method": "subscribe",
        "channel": "market@crypto_latest_price",
        "params": {"crypto_ids": ids},
    }


async def test_every_request_error_and_the_connection_survives(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key, max_size=None) as ws:
        await welcomed(ws)

        async def code_of(frame: str | bytes) -> str:
            await ws.send(frame)
            reply = await recv_json(ws)
            assert reply["type"] == "error", reply
            return str(reply["status"]["error_code"])

        assert await code_of("not json") == "2201"
        assert await code_of("[1]") == "2201"
        assert await code_of(b'{"method":"ping"}') == "2201"
        assert await code_of('{"id":1,"method":7}') == "2201"
        assert await code_of("") == "2203"
        assert await code_of(json.dumps({"method": "ping", "pad": "x" * 70_000})) == "2203"
        assert await code_of('{"id":1,"method":"PING"}') == "2202"
        assert await code_of('{"id":1}') == "2204"
        assert await code_of('{"id":1,"method":"subscribe"}') == "2204"
        assert await code_of(json.dumps({**sub([1]), "channel": "market@kline"})) == "2301"
        assert await code_of('{"id":1,"method":"subscribe","channel":"onchain@kline"}') == "2401"
        assert await code_of(json.dumps(sub([]))) == "2402"
        kline = {"platform_id": 14, "address": BSC_USDT, "interval": "1h"}
        frame = {"id": 6, "method": "subscribe", "channel": "onchain@kline", "params": kline}
        assert await code_of(json.dumps(frame)) == "2402"
        holders = {"platform_id": 20947, "address": "0x2::sui::SUI"}
        frame = {"method": "subscribe", "channel": "onchain@holders_metrics", "params": holders}
        assert await code_of(json.dumps(frame)) == "2402"
        # Still open and serving.
        assert (await request(ws, {"id": 99, "method": "ping"}))["id"] == 99


async def test_frames_beyond_the_transport_cap_close_1009() -> None:
    # A small cap: the whole frame fits in the socket buffers, so the client is not
    # still writing it when the server closes (asyncio's transport races there).
    async with running_server(speed=100, max_frame_bytes=1024, transport_max_bytes=4096) as node:
        async with dial(node.url, node.demo_key, max_size=None) as ws:
            await welcomed(ws)
            await ws.send("x" * (node.config.transport_max_bytes + 1))
            code, _ = await closed_with(ws)
            assert code == 1009


async def test_subscription_limit_duplicates_and_unsubscribes(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        ack = await request(ws, sub(list(range(1, 101))))
        assert (ack["type"], ack["sub_count"], ack["sub_limit"]) == ("ack", 100, 100)
        error = await request(ws, sub([5000], rid=12))
        assert error["id"] == 12
        assert error["status"]["error_code"] == "2303"
        dup = await request(ws, sub([1, 2], rid=5))
        assert dup == {
            "type": "ack",
            "id": 5,
            "code": 0,
            "msg": "ok",
            "channel": "market@crypto_latest_price",
            "sub_count": 100,
            "sub_limit": 100,
            "duplicate": True,
        }
        unsub = {"id": 2, "method": "unsubscribe", "channel": "market@crypto_latest_price"}
        ack = await request(ws, {**unsub, "params": {"crypto_ids": [1, 2, 3]}})
        assert ack["sub_count"] == 97
        ack = await request(ws, {**unsub, "params": {"crypto_ids": [1, 2, 3]}})
        assert ack["sub_count"] == 97  # idempotent
        assert (await request(ws, sub([5000])))["sub_count"] == 98
        ack = await request(ws, {"id": 3, "method": "unsubscribe", "channel": "onchain@kline"})
        assert ack["sub_count"] == 98
        ack = await request(ws, unsub)
        assert (ack["channel"], ack["sub_count"]) == ("market@crypto_latest_price", 0)
        await request(ws, sub([1, 1027]))
        ack = await request(ws, {"id": 4, "method": "unsubscribe_all"})
        assert ack == {
            "type": "ack",
            "id": 4,
            "code": 0,
            "msg": "ok",
            "sub_count": 0,
            "sub_limit": 100,
        }
        assert node.hub.topic_count == 0


async def test_onchain_channels_are_validated_and_acked(node: RunningNode) -> None:
    sol = "6p6xgHyF7AeE6TZkSmFsko444wqoP15icUSqi2jfGiPN"
    requests = [
        ("onchain@token_agg_event", {"platform_id": 14, "address": [BSC_USDT]}),
        (
            "onchain@transaction",
            {"platform_id": 14, "address": BSC_USDT.upper().replace("0X", "0x")},
        ),
        ("onchain@liquidity_event", {"platform_id": 1, "address": [BSC_USDT]}),
        ("onchain@kline", {"platform_id": 14, "address": [BSC_USDT], "interval": "1m"}),
        ("onchain@token_metric", {"platform_id": 14, "address": [BSC_USDT], "mode": "full"}),
        ("onchain@pool_metric", {"platform_id": 16, "pool_address": [sol]}),
        ("onchain@unique_trader", {"platform_id": 14, "address": [BSC_USDT], "interval": "1d"}),
        ("onchain@holders_metrics", {"platform_id": 14, "address": [BSC_USDT]}),
        ("onchain@holder_wallet_update", {"platform_id": 16, "wallet_address": [sol]}),
    ]
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        for count, (channel, params) in enumerate(requests, start=1):
            frame = {"id": count, "method": "subscribe", "channel": channel, "params": params}
            ack = await request(ws, frame)
            assert (ack["type"], ack["channel"], ack["sub_count"]) == ("ack", channel, count)
        # The checksum-cased address was lower-cased, so this one is a duplicate.
        frame = {
            "method": "subscribe",
            "channel": "onchain@transaction",
            "params": {"platform_id": 14, "address": BSC_USDT},
        }
        assert (await request(ws, frame))["duplicate"] is True


async def test_ping_pong_echoes_ids(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        for rid in (1, "a", 2.5):
            pong = await request(ws, {"id": rid, "method": "ping"})
            assert (pong["type"], pong["id"], pong["code"]) == ("pong", rid, 0)
            assert isinstance(pong["ts"], int)
