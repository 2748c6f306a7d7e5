"""The relay against a second cmcstream server as its upstream, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from cmcstream.client import Backoff
from cmcstream.config import ServerConfig
from cmcstream.relay import Relay
from cmcstream.relay.relay import requests, saved
from cmcstream.server.keystore import KeyStore
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.conftest import dial, recv_json, request, welcomed

CHANNEL = "market@crypto_latest_price"
LINGER_S = 0.2
FAST = Backoff(base_s=0.05, cap_s=0.2)


def topic(cid: int) -> str:
    return f"{CHANNEL}|{cid}"


@contextlib.asynccontextmanager
async def relay_over(upstream: RunningNode, **options: Any) -> AsyncIterator[RunningNode]:
    def build(config: ServerConfig, bus: Any) -> Relay:
        return Relay(
            bus,
            upstream.url,
            upstream.demo_key,
            linger_s=LINGER_S,
            backoff=FAST,
            open_timeout=2.0,
            request_timeout=2.0,
            **options,
        )

    async with running_server(feed=build) as local:
        yield local


async def eventually(check: Callable[[], bool], wait: float = 5.0) -> None:
    async with asyncio.timeout(wait):
        while not check():  # noqa: ASYNC110 - the state lives in two servers
            await asyncio.sleep(0.02)


async def subscribe(ws: ClientConnection, ids: list[int], id_: int = 1) -> dict[str, Any]:
    await welcomed(ws)
    message = {"method": "subscribe", "id": id_, "channel": CHANNEL, "params": {"crypto_ids": ids}}
    return await request(ws, message)


async def next_push(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = await recv_json(ws)
        if frame["type"] == "data":
            return frame


@pytest.fixture
async def upstream() -> AsyncIterator[RunningNode]:
    async with running_server(speed=100) as node:  # a 5 s cadence is 50 ms
        yield node


def test_topics_merge_into_one_request_per_channel_and_scalars() -> None:
    from cmcstream.protocol.channels import ChannelRegistry

    registry = ChannelRegistry()
    subs = [registry.subscription_of(t) for t in (topic(1), topic(1027), topic(52))]
    kline = registry.subscription_of(f"onchain@kline|14|0x{'ab' * 20}|1m")
    merged = requests([s for s in [*subs, kline] if s is not None])
    assert merged == [
        (CHANNEL, {"crypto_ids": [1, 1027, 52]}, [topic(1), topic(1027), topic(52)]),
        (
            "onchain@kline",
            {"platform_id": 14, "address": [f"0x{'ab' * 20}"], "interval": "1m"},
            [f"onchain@kline|14|0x{'ab' * 20}|1m"],
        ),
    ]
    assert saved(100, 400) == 0.75
    assert saved(0, 0) == 0.0


async def test_two_locals_on_one_topic_are_one_upstream_subscription(
    upstream: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    async with relay_over(upstream) as local:
        relay = local.feed
        assert isinstance(relay, Relay)
        async with dial(local.url, local.demo_key) as one, dial(local.url, local.demo_key) as two:
            assert (await subscribe(one, [1, 1027]))["sub_count"] == 2
            assert (await subscribe(two, [1]))["sub_count"] == 1
            await eventually(lambda: relay.subscribed == 2)
            assert upstream.hub.topic_count == 2
            assert sum(map(len, upstream.connections.values())) == 1
            first = await next_push(two)
            assert first["params"] == {"crypto_ids": 1}
            assert set(first["data"]) >= {"cid", "p", "vu", "mc"}
            seen = {(await next_push(one))["params"]["crypto_ids"] for _ in range(4)}
            assert seen == {1, 1027}
            # What the upstream charged the relay's key, against the locals' 3 subscriptions.
            credits = local.health()["relay"]["credits"]
            assert credits == {
                "model": "per_subscription",
                "upstream": 0.2,
                "local": 0.3,
                "saved": pytest.approx(1 / 3, abs=1e-4),
            }
            assert upstream.health()["credits_charged"] == pytest.approx(0.2)
            with caplog.at_level(logging.INFO, logger="cmcstream.relay"):
                relay.report()
            assert "upstream charged 0.2 credits" in caplog.text
            assert "local clients were charged 0.3; saved 33.3%" in caplog.text


async def test_a_topic_nobody_watches_is_dropped_upstream_after_the_linger(
    upstream: RunningNode,
) -> None:
    async with relay_over(upstream) as local:
        relay = local.feed
        assert isinstance(relay, Relay)
        async with dial(local.url, local.demo_key) as ws:
            await subscribe(ws, [1, 1027])
            await eventually(lambda: upstream.hub.topic_count == 2)
            unsub = {
                "method": "unsubscribe",
                "id": 2,
                "channel": CHANNEL,
                "params": {"crypto_ids": [1027]},
            }
            assert (await request(ws, unsub))["sub_count"] == 1
            # Back within the linger: no new upstream subscription.
            assert (await subscribe_again(ws, [1027]))["sub_count"] == 2
            await asyncio.sleep(LINGER_S * 2)
            assert relay.subscribed == 2
            assert upstream.hub.topic_count == 2
            assert (await request(ws, {**unsub, "id": 4}))["sub_count"] == 1
            await eventually(lambda: upstream.hub.topic_count == 1)
            assert relay.unsubscribed == 1
            assert relay.health()["relay"]["topics"] == 1


async def subscribe_again(ws: ClientConnection, ids: list[int]) -> dict[str, Any]:
    message = {"method": "subscribe", "id": 3, "channel": CHANNEL, "params": {"crypto_ids": ids}}
    return await request(ws, message)


async def test_an_upstream_restart_is_reconnected_and_locals_keep_their_connection() -> None:
    store = KeyStore(":memory:")
    try:
        async with running_server(store=store, speed=100) as first:
            port = first.port
            async with relay_over(first) as local:
                relay = local.feed
                assert isinstance(relay, Relay)
                async with dial(local.url, local.demo_key) as ws:
                    await subscribe(ws, [1])
                    await next_push(ws)
                    await first.shutdown()  # closes the relay's connection with 1001
                    await eventually(lambda: relay.stream.state.value == "reconnecting")
                    async with running_server(store=store, speed=100, port=port) as second:
                        await eventually(lambda: second.hub.topic_count == 1)
                        push = await next_push(ws)  # the same local connection
                        assert push["params"] == {"crypto_ids": 1}
                        assert relay.health()["relay"]["reconnects"] == 1
                        # The restored subscription is charged again, as the upstream did.
                        assert relay.health()["relay"]["restored"] == 1
                        assert second.health()["credits_charged"] == pytest.approx(0.1)
                        assert relay.upstream_milli == 200
                        assert relay.health()["relay"]["state"] == "open"
    finally:
        store.close()


async def test_topics_beyond_upstream_room_wait_for_it() -> None:
    # Speed 10: the client holding a hundred topics reads none of their pushes.
    async with (
        running_server(speed=10) as upstream,
        relay_over(upstream, max_connections=1) as local,
    ):
        relay = local.feed
        assert isinstance(relay, Relay)
        async with dial(local.url, local.demo_key) as full, dial(local.url, local.demo_key) as more:
            assert (await subscribe(full, list(range(1, 101))))["sub_count"] == 100
            await eventually(lambda: relay.subscribed == 100)
            assert (await subscribe(more, [1027]))["sub_count"] == 1
            await eventually(lambda: relay.health()["relay"]["waiting"] == [topic(1027)])
            unsub = {
                "method": "unsubscribe",
                "id": 2,
                "channel": CHANNEL,
                "params": {"crypto_ids": [100]},
            }
            await request(full, unsub)
            await eventually(lambda: relay.health()["relay"]["waiting"] == [])
            assert upstream.hub.topic_count == 100
            push = await next_push(more)
            assert push["params"] == {"crypto_ids": 1027}


async def test_a_topic_dropped_while_its_upstream_subscribe_is_on_the_way_is_dropped_too(
    upstream: RunningNode,
) -> None:
    async with relay_over(upstream) as local:
        relay = local.feed
        assert isinstance(relay, Relay)
        async with dial(local.url, local.demo_key) as ws:
            await subscribe(ws, [1])
            unsub = {
                "method": "unsubscribe",
                "id": 2,
                "channel": CHANNEL,
                "params": {"crypto_ids": [1]},
            }
            assert (await request(ws, unsub))["sub_count"] == 0
            await eventually(lambda: relay.subscribed == 1)
            await eventually(lambda: upstream.hub.topic_count == 0)
            assert relay.health()["relay"]["topics"] == 0
