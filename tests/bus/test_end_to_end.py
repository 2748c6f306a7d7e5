"""A feed and a gateway in separate apps over Redis, with a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection

from cmcstream.app import App
from cmcstream.bus.redis import RedisBus
from cmcstream.config import ServerConfig
from cmcstream.server.keystore import KeyStore
from tests.bus.conftest import SHARED_REDIS, PrivateRedis, eventually
from tests.server.conftest import dial, recv_json, request, welcomed

# speed 100: the 5 s market cadence is 50 ms of wall time.
CONFIG = ServerConfig(host="127.0.0.1", port=0, universe_size=600, dex_warm_up=False, speed=100)
SUBSCRIBE = {
    "id": 1,
    "method": "subscribe",
    "channel": "market@crypto_latest_price",
    "params": {"crypto_ids": [1, 1027]},
}


@contextlib.asynccontextmanager
async def split(url: str, prefix: str) -> AsyncIterator[tuple[App, App, str]]:
    """A feed-only app and a gateway-only app, each with its own bus, as two processes have."""
    store = KeyStore(":memory:")
    key = store.create(plan="startup", name="test").key
    feed = App(CONFIG, bus=RedisBus(url, prefix=prefix), feed=True, gateway=False)
    gateway = App(CONFIG, store, bus=RedisBus(url, prefix=prefix), feed=False, gateway=True)
    await feed.start()
    try:
        await gateway.start()
        try:
            yield feed, gateway, key
        finally:
            await gateway.shutdown()
    finally:
        await feed.shutdown()
        store.close()


async def pushes(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    frames = []
    while len(frames) < count:
        frame = await recv_json(ws)
        assert frame["type"] == "data", frame
        frames.append(frame)
    return frames


async def test_a_client_of_the_gateway_receives_the_feeds_pushes(prefix: str) -> None:
    async with split(SHARED_REDIS, prefix) as (feed, gateway, key):
        async with dial(gateway.url, key) as ws:
            await welcomed(ws)
            ack = await request(ws, SUBSCRIBE)
            assert ack["sub_count"] == 2
            frames = await pushes(ws, 6)
        assert {frame["params"]["crypto_ids"] for frame in frames} == {1, 1027}
        assert feed._feed().publisher.published >= 6
        # The feed computed only what the gateway's client watched.
        assert isinstance(feed.bus, RedisBus)
        await eventually(lambda: not feed.bus._watchers)  # type: ignore[attr-defined]


async def test_a_gateway_keeps_its_clients_while_redis_restarts(
    private_redis: PrivateRedis, prefix: str
) -> None:
    async with split(private_redis.url, prefix) as (_, gateway, key):
        async with dial(gateway.url, key) as ws:
            await welcomed(ws)
            await request(ws, SUBSCRIBE)
            before = await pushes(ws, 2)
            private_redis.kill()
            await asyncio.sleep(0.5)
            private_redis.start()
            # Still connected, and pushes flow again once both sides are back.
            after = await pushes(ws, 8)
        assert ws.close_code == 1000
    # Latest-value pushes: never the same update twice.
    seen = [json.dumps(frame, sort_keys=True) for frame in before + after]
    assert len(seen) == len(set(seen))
