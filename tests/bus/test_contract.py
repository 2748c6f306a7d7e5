"""The contract of ``cmcstream.bus.base``, held by every bus (each test runs on each)."""

from __future__ import annotations

import redis

from cmcstream.bus.redis import RedisBus
from tests.bus.conftest import SHARED_REDIS, Deployment, Recorder, RedisDeployment, eventually


async def test_only_subscribed_topics_in_order_at_most_once(deployment: Deployment) -> None:
    feed_bus, gateway_bus = await deployment.feed(), await deployment.gateway()
    feed, gateway = Recorder(), Recorder()
    gateway.attach_gateway(gateway_bus)
    feed.attach_feed(feed_bus)
    gateway_bus.subscribe("a")
    gateway_bus.subscribe("b")
    await eventually(lambda: feed.watched == {"a", "b"})

    for topic, payload in [("a", 1), ("c", 1), ("b", 1), ("a", 2), ("a", 3), ("c", 2), ("b", 2)]:
        feed_bus.publish(topic, b"%d" % payload)
    feed_bus.flush()
    feed_bus.publish("b", b"end")
    feed_bus.flush()
    await eventually(lambda: ("b", b"end") in gateway.received)
    assert gateway.received == [
        ("a", b"1"),
        ("b", b"1"),
        ("a", b"2"),
        ("a", b"3"),
        ("b", b"2"),
        ("b", b"end"),
    ]
    assert gateway.batches >= 1

    gateway_bus.unsubscribe("a")
    await eventually(lambda: feed.watched == {"b"})
    feed_bus.publish("a", b"4")
    feed_bus.publish("b", b"3")
    feed_bus.flush()
    await eventually(lambda: ("b", b"3") in gateway.received)
    assert ("a", b"4") not in gateway.received
    assert len(gateway.received) == 7


async def test_interest_is_told_once_per_change(deployment: Deployment) -> None:
    feed_bus, gateway_bus = await deployment.feed(), await deployment.gateway()
    feed = Recorder()
    Recorder().attach_gateway(gateway_bus)
    feed.attach_feed(feed_bus)
    gateway_bus.subscribe("x")
    gateway_bus.subscribe("y")
    gateway_bus.unsubscribe("x")
    gateway_bus.subscribe("z")
    await eventually(lambda: feed.watched == {"y", "z"})
    gateway_bus.unsubscribe("y")
    gateway_bus.unsubscribe("z")
    await eventually(lambda: not feed.watched)
    # A networked bus may collapse a change undone before it was sent, never repeat one.
    assert sorted(feed.told) == sorted(set(feed.told))
    assert feed.told.count(("watch", "y")) == feed.told.count(("unwatch", "y")) == 1
    assert feed.told.count(("watch", "z")) == feed.told.count(("unwatch", "z")) == 1


async def test_a_feed_that_starts_later_is_told_every_watched_topic(
    deployment: Deployment,
) -> None:
    gateway_bus = await deployment.gateway()
    Recorder().attach_gateway(gateway_bus)
    for topic in ("m", "n", "o"):
        gateway_bus.subscribe(topic)
    gateway_bus.unsubscribe("o")
    first = Recorder()
    first.attach_feed(await deployment.feed())
    await eventually(lambda: first.watched == {"m", "n"})

    later = Recorder()
    later.attach_feed(await deployment.feed())
    await eventually(lambda: later.watched == {"m", "n"})
    assert sorted(later.told) == [("watch", "m"), ("watch", "n")]


async def test_aclose_stops_delivery(deployment: Deployment) -> None:
    feed_bus, gateway_bus = await deployment.feed(), await deployment.gateway()
    gateway = Recorder()
    gateway.attach_gateway(gateway_bus)
    feed = Recorder()
    feed.attach_feed(feed_bus)
    gateway_bus.subscribe("a")
    await eventually(lambda: feed.watched == {"a"})
    feed_bus.publish("a", b"1")
    feed_bus.flush()
    await eventually(lambda: len(gateway.received) == 1)
    await gateway_bus.aclose()
    if gateway_bus is not feed_bus:
        await eventually(lambda: not feed.watched)
    feed_bus.publish("a", b"2")
    feed_bus.flush()
    if isinstance(feed_bus, RedisBus):
        await eventually(lambda: feed_bus.published == 2)
    assert gateway.received == [("a", b"1")]


# -- several gateways: only a bus between processes has them ---------------------------------


async def test_interest_is_told_once_across_gateways(redis_deployment: RedisDeployment) -> None:
    feed = Recorder()
    feed.attach_feed(await redis_deployment.feed())
    one, two = await redis_deployment.gateway(), await redis_deployment.gateway()
    one_got, two_got = Recorder(), Recorder()
    one_got.attach_gateway(one)
    two_got.attach_gateway(two)
    one.subscribe("x")
    await eventually(lambda: feed.watched == {"x"})
    two.subscribe("x")
    two.subscribe("marker-1")
    await eventually(lambda: "marker-1" in feed.watched)
    one.unsubscribe("x")
    one.subscribe("marker-2")  # told after the unsubscribe before it, if that were told
    await eventually(lambda: "marker-2" in feed.watched)
    assert feed.told.count(("watch", "x")) == 1
    assert ("unwatch", "x") not in feed.told

    two.unsubscribe("x")
    await eventually(lambda: "x" not in feed.watched)
    assert feed.told.count(("unwatch", "x")) == 1
    assert feed.told.count(("watch", "x")) == 1


async def test_each_gateway_receives_only_its_topics(redis_deployment: RedisDeployment) -> None:
    feed = Recorder()
    feed_bus = await redis_deployment.feed()
    feed.attach_feed(feed_bus)
    one, two = await redis_deployment.gateway(), await redis_deployment.gateway()
    one_got, two_got = Recorder(), Recorder()
    one_got.attach_gateway(one)
    two_got.attach_gateway(two)
    one.subscribe("a")
    two.subscribe("b")
    two.subscribe("a")
    await eventually(lambda: feed.watched == {"a", "b"})
    for payload in (b"1", b"2"):
        feed_bus.publish("a", payload)
        feed_bus.publish("b", payload)
    feed_bus.flush()
    await eventually(lambda: len(one_got.received) == 2 and len(two_got.received) == 4)
    assert one_got.received == [("a", b"1"), ("a", b"2")]
    assert two_got.received == [("a", b"1"), ("b", b"1"), ("a", b"2"), ("b", b"2")]


async def test_redis_aclose_releases_keys_and_connections(
    redis_deployment: RedisDeployment,
) -> None:
    feed = Recorder()
    feed.attach_feed(await redis_deployment.feed())
    gateway = await redis_deployment.make(lease_ms=60_000)
    Recorder().attach_gateway(gateway)
    gateway.subscribe("a")
    await eventually(lambda: feed.watched == {"a"})
    client = redis.Redis.from_url(SHARED_REDIS)
    name = f"{gateway.prefix}:{gateway.gateway_id}"

    def our_connections() -> int:
        return sum(1 for entry in client.client_list() if entry.get("name") == name)

    try:
        assert our_connections() >= 2  # commands, and the subscriber
        await gateway.aclose()
        # Told now, on leaving, not a 60 s lease later.
        await eventually(lambda: not feed.watched, within=2.0)
        assert our_connections() == 0
        assert client.zscore(f"{gateway.prefix}:gateways", gateway.gateway_id) is None
        assert not client.exists(f"{gateway.prefix}:watch:{gateway.gateway_id}")
    finally:
        client.close()


async def test_a_large_batch_reaches_the_gateway_as_one(deployment: Deployment) -> None:
    """However many reads a batch takes, the hub gets it in one pass and one batch end,
    so each connection is written once per batch."""
    feed_bus, gateway_bus = await deployment.feed(), await deployment.gateway()
    feed, gateway = Recorder(), Recorder()
    gateway.attach_gateway(gateway_bus)
    feed.attach_feed(feed_bus)
    topics = [f"topic-{n}" for n in range(300)]
    for topic in topics:
        gateway_bus.subscribe(topic)
    await eventually(lambda: feed.watched == set(topics))
    payload = b"x" * 2000  # 600 kB in all: many socket reads
    for topic in topics:
        feed_bus.publish(topic, payload)
    feed_bus.flush()
    await eventually(lambda: len(gateway.received) == len(topics))
    assert [topic for topic, _ in gateway.received] == topics
    assert gateway.batches == 1
