"""The Redis bus when things die: a gateway killed outright, and Redis itself restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator

import pytest
import redis

from cmcstream.bus.redis import RedisBus
from tests.bus.conftest import (
    SHARED_REDIS,
    PrivateRedis,
    Recorder,
    RedisDeployment,
    eventually,
)

# A gateway in a process of its own, so that it can die without saying goodbye.
_GATEWAY = textwrap.dedent(
    """
    import asyncio, sys
    from cmcstream.bus.redis import RedisBus

    async def main() -> None:
        bus = RedisBus(sys.argv[1], prefix=sys.argv[2], lease_ms=int(sys.argv[3]))
        bus.set_handler(lambda topic, payload: None)
        await bus.start()
        bus.subscribe("dies-with-its-gateway")
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_a_killed_gateways_interest_expires_with_its_lease(
    redis_deployment: RedisDeployment, prefix: str
) -> None:
    lease_ms = 600
    feed = Recorder()
    feed.attach_feed(await redis_deployment.make(lease_ms=lease_ms))
    survivor = await redis_deployment.make(lease_ms=lease_ms)
    Recorder().attach_gateway(survivor)
    survivor.subscribe("stays")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _GATEWAY,
        SHARED_REDIS,
        prefix,
        str(lease_ms),
        stdin=subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: feed.watched == {"stays", "dies-with-its-gateway"}, within=10)
        # Renewals keep it for several leases while it lives.
        await asyncio.sleep(3 * lease_ms / 1000)
        assert feed.watched == {"stays", "dies-with-its-gateway"}
        os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        await eventually(lambda: "dies-with-its-gateway" not in feed.watched, within=5)
        # A lease, plus the quarter lease between the feed's sweeps, plus slack for a busy CI.
        assert time.monotonic() - killed < 2 * lease_ms / 1000 + 0.5
        assert feed.watched == {"stays"}
        assert feed.told.count(("unwatch", "dies-with-its-gateway")) == 1
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.fixture
async def private_deployment(
    private_redis: PrivateRedis, prefix: str
) -> AsyncIterator[RedisDeployment]:
    made = RedisDeployment(private_redis.url, prefix, lease_ms=10_000)
    try:
        yield made
    finally:
        await made.close()


async def test_restarting_redis_keeps_the_gateway_and_delivers_nothing_twice(
    private_redis: PrivateRedis, private_deployment: RedisDeployment
) -> None:
    feed = Recorder()
    feed_bus = await private_deployment.feed()
    feed.attach_feed(feed_bus)
    gateway_bus = await private_deployment.gateway()
    assert isinstance(gateway_bus, RedisBus)
    assert isinstance(feed_bus, RedisBus)
    gateway = Recorder()
    gateway.attach_gateway(gateway_bus)
    gateway_bus.subscribe("market@crypto_latest_price|1")
    gateway_bus.subscribe("other")
    await eventually(lambda: len(feed.watched) == 2)
    counter = 0

    def publish() -> None:
        nonlocal counter
        counter += 1
        feed_bus.publish("market@crypto_latest_price|1", b"%d" % counter)
        feed_bus.flush()

    publish()
    await eventually(lambda: len(gateway.received) == 1)

    private_redis.kill()
    for _ in range(10):  # lost, not queued for later
        publish()
        await asyncio.sleep(0.02)
    await eventually(lambda: feed_bus.dropped > 0)
    private_redis.start()  # same port, empty: no keys, no subscriptions

    # Both sides come back by themselves: the gateway subscribes and announces again.
    await eventually(lambda: gateway_bus.reconnects >= 1 and feed_bus.reconnects >= 1, within=10)
    before = len(gateway.received)
    while len(gateway.received) == before:
        publish()
        await asyncio.sleep(0.02)
    for _ in range(20):
        publish()
    await eventually(lambda: gateway.received[-1][1] == b"%d" % counter)

    values = [int(payload) for _, payload in gateway.received]
    assert values == sorted(set(values)), "a value was delivered twice or out of order"
    assert values[0] == 1
    assert values[-1] == counter
    assert len(values) < counter  # what was published during the outage is gone
    # The gateway was back within a lease, so the feed never stopped watching.
    assert ("unwatch", "market@crypto_latest_price|1") not in feed.told
    assert feed.watched == {"market@crypto_latest_price|1", "other"}
    # After an outage the gateway's interest is in Redis again, for feeds that start later.
    late = Recorder()
    late.attach_feed(await private_deployment.feed())
    await eventually(lambda: late.watched == {"market@crypto_latest_price|1", "other"})


async def test_a_gateway_that_dies_while_redis_is_down_is_unwatched_a_lease_later(
    private_redis: PrivateRedis, prefix: str
) -> None:
    """Redis comes back empty and the gateway never re-announces: the feed, which kept
    its interest through the outage, drops it one lease after the snapshot lacks it."""
    lease_ms = 500
    feed_bus = RedisBus(private_redis.url, prefix=prefix, lease_ms=lease_ms)
    gateway_bus = RedisBus(private_redis.url, prefix=prefix, lease_ms=lease_ms)
    feed = Recorder()
    try:
        await feed_bus.start()
        await gateway_bus.start()
        feed.attach_feed(feed_bus)
        Recorder().attach_gateway(gateway_bus)
        gateway_bus.subscribe("t")
        await eventually(lambda: feed.watched == {"t"})
        private_redis.kill()
        await gateway_bus.aclose()  # cannot say goodbye: Redis is down
        private_redis.start()
        await eventually(lambda: feed_bus.reconnects >= 1)
        back = time.monotonic()
        await eventually(lambda: not feed.watched)
        assert time.monotonic() - back < 2 * lease_ms / 1000 + 0.5
        assert feed.told == [("watch", "t"), ("unwatch", "t")]
    finally:
        await gateway_bus.aclose()
        await feed_bus.aclose()


async def test_a_gateway_whose_lease_ran_out_announces_itself_again(
    redis_deployment: RedisDeployment, prefix: str
) -> None:
    """A stalled gateway the feed swept away is watched again at its next renewal."""
    lease_ms = 600
    feed = Recorder()
    feed.attach_feed(await redis_deployment.make(lease_ms=lease_ms))
    gateway = await redis_deployment.make(lease_ms=lease_ms)
    Recorder().attach_gateway(gateway)
    gateway.subscribe("t")
    await eventually(lambda: feed.watched == {"t"})
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        client.zadd(f"{prefix}:gateways", {gateway.gateway_id: 0})  # as if it had stalled
    finally:
        client.close()
    await eventually(lambda: ("unwatch", "t") in feed.told)
    await eventually(lambda: feed.watched == {"t"})
    assert feed.told == [("watch", "t"), ("unwatch", "t"), ("watch", "t")]


async def test_publishing_without_redis_drops_and_never_blocks(private_redis: PrivateRedis) -> None:
    bus = RedisBus(private_redis.url, prefix="p")
    try:
        await bus.start()
        private_redis.kill()
        began = time.monotonic()
        for n in range(200):
            bus.publish("t", b"%d" % n)
            bus.flush()
            await asyncio.sleep(0)
        assert time.monotonic() - began < 1.0
        await eventually(lambda: bus.dropped == 200)
        assert bus.published == 0
        assert bus.health()["publishing"] is False
    finally:
        await bus.aclose()


async def test_a_batch_whose_end_marker_never_comes_is_still_delivered(
    redis_deployment: RedisDeployment, prefix: str
) -> None:
    """A publish pipeline cut short by an outage loses its end marker; what did arrive
    is handed over anyway, once the socket has been quiet for a moment."""
    feed = Recorder()
    feed.attach_feed(await redis_deployment.feed())
    gateway_bus = await redis_deployment.gateway()
    gateway = Recorder()
    gateway.attach_gateway(gateway_bus)
    gateway_bus.subscribe("t")
    await eventually(lambda: feed.watched == {"t"})
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        client.publish(f"{prefix}:t:t", b"orphan")  # no marker follows
    finally:
        client.close()
    await eventually(lambda: gateway.received == [("t", b"orphan")], within=2)
    assert gateway.batches == 1
