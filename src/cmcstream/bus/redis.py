"""A bus over Redis: one feed process, any number of gateway processes, on one or more machines.

Data. Every topic is its own pub/sub channel (``{prefix}:t:{topic}``); a
gateway SUBSCRIBEs to exactly the topics its clients watch, so Redis sends it
nothing else. Plain channels rather than sharded ones (SSUBSCRIBE): on one
Redis server they behave the same, and plain ones work on every Redis version.
The feed queues publishes and sends each batch as one pipeline at ``flush()``
(or once a batch reaches ``max_batch``), from the bus's own task, ended by a
marker on ``{prefix}:batch``; a gateway hands a batch to its hub in one pass
when the marker arrives, so each connection is written once per batch, as with
the in-process bus.

Delivery is at most once. Pub/sub keeps no history, so a reconnect replays
nothing, and a publish pipeline that fails part-way is never resent (the
client is built with no retries, since a retry would repeat the PUBLISHes that
did get through). While Redis is unreachable the feed drops its batches and a
gateway's clients receive nothing; they stay connected, and latest-value
channels carry on from the next update once Redis is back.

Interest. Redis holds which gateway watches which topic:

- ``{prefix}:gateways``: a sorted set of gateway ids scored by the end of
  their lease (Redis's own clock, so machines' clocks never disagree), renewed
  every third of a lease;
- ``{prefix}:watch:{gateway}``: the topics of that gateway;
- ``{prefix}:seq``: a counter; each change runs in one script that updates the
  keys, increments the counter and publishes the change with its number on
  ``{prefix}:interest``.

The feed reads a snapshot (with its number), then applies numbered changes in
order; a gap or a reconnect means a fresh snapshot. It keeps how many gateways
watch each topic and tells ``on_watch``/``on_unwatch`` on the edges, so each
change is told once however many gateways share a topic. It also sweeps the
gateways whose lease ran out (a killed gateway), so their topics go unwatched
within ``lease_ms`` plus a quarter of it. A gateway that closes leaves at once.
A gateway missing from the snapshot taken after an outage (Redis restarted
empty) keeps its interest for one more lease, time enough to announce itself
again, so a Redis restart does not make the feed drop and rebuild its topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import msgspec
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cmcstream.bus.base import BusHandler, InterestHandler
from cmcstream.tasks import cancel_all

__all__ = ["RedisBus"]

logger = logging.getLogger(__name__)

# Errors that mean "Redis is not there right now": log, back off, reconnect.
_OUTAGE: Final = (RedisError, OSError, asyncio.TimeoutError)
_BACKOFF_FIRST_S: Final = 0.05
_BACKOFF_MAX_S: Final = 2.0
_LATE_S: Final = 0.05  # a batch whose end marker never came is delivered after this
_CHUNK: Final = 512  # channels per SUBSCRIBE, topics per interest script call

# Every script reads the time from Redis, so leases never depend on a machine's clock.
_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: seq, gateways, watch:{gw}.  ARGV: channel, gw, lease_ms, op, topics...
# op: set (replace this gateway's topics), add, remove, renew, leave.
# Returns -1 when the gateway's lease had run out and it must announce a full set.
_ANNOUNCE: Final = (
    _NOW
    + """
local gw, lease, op = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local until_ = redis.call('ZSCORE', KEYS[2], gw)
if op ~= 'set' and op ~= 'leave' and (not until_ or tonumber(until_) < now) then
  return -1
end
local topics = {}
for i = 5, #ARGV do topics[#topics + 1] = ARGV[i] end
if op == 'leave' then
  redis.call('ZREM', KEYS[2], gw)
  redis.call('DEL', KEYS[3])
  op = 'drop'
else
  redis.call('ZADD', KEYS[2], now + lease, gw)
  if op == 'set' then redis.call('DEL', KEYS[3]) end
  for i = 1, #topics, 512 do
    local last = math.min(i + 511, #topics)
    if op == 'remove' then
      redis.call('SREM', KEYS[3], unpack(topics, i, last))
    else
      redis.call('SADD', KEYS[3], unpack(topics, i, last))
    end
  end
  -- Outlives the lease, so a gateway nobody sweeps leaves nothing behind for long.
  redis.call('PEXPIRE', KEYS[3], 4 * lease)
  if op == 'renew' then return 0 end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], cmsgpack.pack({seq, op, gw, topics}))
return seq
"""
)

# KEYS: seq, gateways.  ARGV: channel, watch key prefix.  Drops gateways whose lease ran out.
_SWEEP: Final = (
    _NOW
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
for _, gw in ipairs(dead) do
  redis.call('ZREM', KEYS[2], gw)
  redis.call('DEL', ARGV[2] .. gw)
  local seq = redis.call('INCR', KEYS[1])
  redis.call('PUBLISH', ARGV[1], cmsgpack.pack({seq, 'drop', gw, {}}))
end
return #dead
"""
)

# KEYS: seq, gateways.  ARGV: watch key prefix.  -> {seq, gw1, {topics}, gw2, {topics}, ...}
_SNAPSHOT: Final = (
    _NOW
    + """
local out = {tonumber(redis.call('GET', KEYS[1]) or '0')}
for _, gw in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')) do
  out[#out + 1] = gw
  out[#out + 1] = redis.call('SMEMBERS', ARGV[1] .. gw)
end
return out
"""
)


class _Backoff:
    def __init__(self) -> None:
        self.delay = _BACKOFF_FIRST_S

    def reset(self) -> None:
        self.delay = _BACKOFF_FIRST_S

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay * (0.5 + secrets.randbelow(1000) / 1000))
        self.delay = min(self.delay * 2, _BACKOFF_MAX_S)


class RedisBus:
    """The :class:`~cmcstream.bus.base.Bus` over a Redis server, for feeds and gateways in
    separate processes. Either side, or both, may use one instance.

    Args:
        url: the Redis server (``redis://``, ``rediss://`` or ``unix://``).
        prefix: namespaces every key and channel, so several deployments (or
            tests) can share one Redis.
        gateway_id: this gateway's name in Redis; unique per process (defaults
            to host, pid and a random suffix).
        lease_ms: how long a gateway's interest outlives its last renewal
            (it renews every third of it).
        max_batch: publishes queued before a batch is sent without waiting for
            ``flush()``.
        max_pending: batches waiting to be sent before the oldest are dropped
            (Redis slower than the feed).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "cmcstream",
        gateway_id: str | None = None,
        lease_ms: int = 15_000,
        max_batch: int = 1024,
        max_pending: int = 64,
    ) -> None:
        if lease_ms < 100:
            raise ValueError("lease_ms must be at least 100")
        self.url = url
        self.prefix = prefix
        self.gateway_id = gateway_id or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.lease_ms = lease_ms
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._data_prefix = f"{prefix}:t:".encode()
        self._interest_channel = f"{prefix}:interest"
        self._batch_channel = f"{prefix}:batch".encode()
        self._keys = [f"{prefix}:seq", f"{prefix}:gateways", f"{prefix}:watch:{self.gateway_id}"]
        self._watch_prefix = f"{prefix}:watch:"

        self._redis: Redis | None = None
        self._subscriber_pool: ConnectionPool | None = None
        self._scripts: dict[str, Any] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False

        # -- gateway side
        self._handler: BusHandler | None = None
        self._batch_end: Callable[[], None] | None = None
        self._topics: set[str] = set()  # what the hub wants
        self._live: set[str] = set()  # what the Redis connection is subscribed to
        self._changed: dict[str, None] = {}  # topics whose wanted state changed, in order
        self._channel_topics: dict[bytes, str] = {}
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._gateway_wake = asyncio.Event()

        # -- feed side
        self._on_watch: InterestHandler | None = None
        self._on_unwatch: InterestHandler | None = None
        self._seq = 0
        self._gateway_topics: dict[str, set[str]] = {}
        self._watchers: dict[str, int] = {}  # topic -> gateways watching it
        # Gateways missing from the snapshot taken after an outage, kept (until
        # the monotonic deadline) in case they are re-announcing.
        self._unconfirmed: dict[str, float] = {}

        # -- publishing
        self._batch: list[tuple[bytes, bytes]] = []
        self._pending: deque[list[tuple[bytes, bytes]]] = deque()
        self._channels: dict[str, bytes] = {}
        self._sender_wake = asyncio.Event()
        self._sent = asyncio.Event()  # set while nothing waits to be sent
        self._sender_up = False

        # Counters for /health, tests and benchmarks.
        self.published = 0
        self.dropped = 0
        self.received = 0
        self.reconnects = 0

    # -- the gateway side --------------------------------------------------------------------

    def set_handler(self, handler: BusHandler, batch_end: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._batch_end = batch_end
        self._ensure_task("gateway", self._run_gateway)

    def subscribe(self, topic: str) -> None:
        if topic not in self._topics:
            self._topics.add(topic)
            self._changed[topic] = None
            self._gateway_wake.set()

    def unsubscribe(self, topic: str) -> None:
        if topic in self._topics:
            self._topics.discard(topic)
            self._changed[topic] = None
            self._gateway_wake.set()

    # -- the feed side -----------------------------------------------------------------------

    def set_interest(self, on_watch: InterestHandler, on_unwatch: InterestHandler) -> None:
        self._on_watch, self._on_unwatch = on_watch, on_unwatch
        for topic in list(self._watchers):
            on_watch(topic)
        self._ensure_task("feed", self._run_feed)

    def publish(self, topic: str, payload: bytes) -> None:
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = self._data_prefix + topic.encode()
        self._batch.append((channel, payload))
        if len(self._batch) >= self._max_batch:
            self._ship()

    def flush(self) -> None:
        if self._batch:
            self._ship()

    # -- both --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis (raises if it cannot be reached) and start the bus's tasks."""
        common: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_keepalive": True,
            "client_name": f"{self.prefix}:{self.gateway_id}",
            # Never resend a command: a resent PUBLISH pipeline would deliver twice.
            "retry": Retry(NoBackoff(), 0),
            # RESP2: a subscriber reads messages as replies, in order with the
            # (un)subscribe confirmations it waits for.
            "protocol": 2,
        }
        self._redis = Redis.from_url(self.url, socket_timeout=5.0, **common)
        # Subscriber connections wait for messages as long as it takes.
        self._subscriber_pool = ConnectionPool.from_url(self.url, socket_timeout=None, **common)
        for name, source in (
            ("announce", _ANNOUNCE),
            ("sweep", _SWEEP),
            ("snapshot", _SNAPSHOT),
        ):
            self._scripts[name] = self._redis.register_script(source)
        await self._redis.ping()
        self._sender_up = True
        self._ensure_task("sender", self._run_sender)
        if self._handler is not None:
            self._ensure_task("gateway", self._run_gateway)
        if self._on_watch is not None:
            self._ensure_task("feed", self._run_feed)

    async def aclose(self) -> None:
        """Send what is queued, leave (the feed unwatches this gateway's topics now), close."""
        self.flush()
        self._closing = True
        if "sender" in self._tasks and self._pending and self._sender_up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._sent.wait(), 1.0)
        await cancel_all(self._tasks.values())
        self._tasks.clear()
        if self._redis is not None and self._handler is not None:
            try:
                await asyncio.wait_for(self._announce("leave", []), 1.0)
            except _OUTAGE as exc:
                logger.warning("could not withdraw gateway %s from Redis: %s", self.gateway_id, exc)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._subscriber_pool is not None:
            await self._subscriber_pool.disconnect()
            self._subscriber_pool = None
        self._handler = self._batch_end = None
        self._on_watch = self._on_unwatch = None
        self._topics.clear()
        self._live.clear()
        self._changed.clear()
        self._batch.clear()
        self._pending.clear()

    def health(self) -> dict[str, Any]:
        """The bus's state and counters, for a process's ``/health``."""
        return {
            "kind": "redis",
            "gateway_id": self.gateway_id,
            "publishing": self._sender_up,
            "topics": len(self._topics),
            "watched": len(self._watchers),
            "published": self.published,
            "dropped": self.dropped,
            "received": self.received,
            "reconnects": self.reconnects,
        }

    # -- tasks -------------------------------------------------------------------------------

    def _ensure_task(self, name: str, run: Callable[[], Any]) -> None:
        if self._redis is None or self._closing or name in self._tasks:
            return
        self._tasks[name] = asyncio.get_running_loop().create_task(run(), name=f"redis-bus-{name}")

    async def _forever(self, name: str, epoch: Callable[[Callable[[], None]], Any]) -> None:
        """Run ``epoch`` (one connection's life) again after every outage, with backoff."""
        backoff = _Backoff()
        down_since: float | None = None

        def connected() -> None:
            nonlocal down_since
            backoff.reset()
            if down_since is not None:
                self.reconnects += 1
                logger.info("redis bus %s back after %.1f s", name, time.monotonic() - down_since)
                down_since = None

        while True:
            try:
                await epoch(connected)
            except _OUTAGE as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    logger.warning("redis bus %s lost Redis (%s); retrying", name, exc)
            except Exception:
                # A bug must not silently end the task a gateway depends on.
                logger.exception("redis bus %s failed; restarting it", name)
            await backoff.sleep()

    def _subscriber(self) -> Connection:
        assert self._subscriber_pool is not None
        conn = self._subscriber_pool.make_connection()  # type: ignore[no-untyped-call]
        assert isinstance(conn, Connection)
        return conn

    # -- publishing --------------------------------------------------------------------------

    def _ship(self) -> None:
        batch, self._batch = self._batch, []
        if not self._sender_up or self._closing:
            # At most once: what cannot be sent now is not worth sending later.
            self.dropped += len(batch)
            return
        self._pending.append(batch)
        self._sent.clear()
        while len(self._pending) > self._max_pending:
            self.dropped += len(self._pending.popleft())
        self._sender_wake.set()

    async def _run_sender(self) -> None:
        await self._forever("publisher", self._sender_epoch)

    async def _sender_epoch(self, connected: Callable[[], None]) -> None:
        assert self._redis is not None
        redis = self._redis
        try:
            if not self._sender_up:
                await redis.ping()
                self._sender_up = True
            connected()
            while True:
                await self._sender_wake.wait()
                self._sender_wake.clear()
                while self._pending:
                    batch = self._pending.popleft()
                    pipe = redis.pipeline(transaction=False)
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    pipe.publish(self._batch_channel, b"")
                    try:
                        await pipe.execute()
                    except _OUTAGE:
                        self.dropped += len(batch)
                        raise
                    self.published += len(batch)
                self._sent.set()
        except _OUTAGE:
            self._sender_up = False
            while self._pending:
                self.dropped += len(self._pending.popleft())
            raise

    # -- gateway: subscriptions and interest -------------------------------------------------

    async def _run_gateway(self) -> None:
        await self._forever("gateway", self._gateway_epoch)

    async def _gateway_epoch(self, connected: Callable[[], None]) -> None:
        conn = self._subscriber()
        self._live.clear()
        self._channel_topics.clear()
        reader: asyncio.Task[None] | None = None
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            reader = asyncio.get_running_loop().create_task(self._read_data(conn))
            await self._confirmed(conn, reader, "SUBSCRIBE", [self._batch_channel])
            # Everything wanted now, then a full announcement: the state after an
            # outage is whatever the hub wants, not the changes made meanwhile.
            self._changed.clear()
            self._gateway_wake.clear()
            topics = sorted(self._topics)
            await self._send_subscriptions(conn, reader, "SUBSCRIBE", topics)
            await self._announce_or_fail("set", topics)
            connected()
            renew_every = self.lease_ms / 3000
            renew_at = time.monotonic() + renew_every
            while True:
                waiter = asyncio.ensure_future(self._gateway_wake.wait())
                await asyncio.wait(
                    {reader, waiter},
                    timeout=max(0.0, renew_at - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                if reader.done():
                    reader.result()  # raises what ended it
                    raise ConnectionError("subscriber connection closed")
                if self._gateway_wake.is_set():
                    self._gateway_wake.clear()
                    await self._sync(conn, reader)
                if time.monotonic() >= renew_at:
                    if await self._announce("renew", []) < 0:
                        # Our lease ran out (a long stall): the feed dropped us.
                        await self._announce_or_fail("set", sorted(self._live))
                    renew_at = time.monotonic() + renew_every
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, *_OUTAGE):
                    await reader
            for future in self._confirm.values():
                future.cancel()
            self._confirm.clear()
            with contextlib.suppress(*_OUTAGE):
                await conn.disconnect()

    async def _sync(self, conn: Connection, reader: asyncio.Task[None]) -> None:
        changed, self._changed = list(self._changed), {}
        added = [topic for topic in changed if topic in self._topics and topic not in self._live]
        removed = [topic for topic in changed if topic not in self._topics and topic in self._live]
        if added:
            await self._send_subscriptions(conn, reader, "SUBSCRIBE", added)
            await self._announce_or_fail("add", added)
        if removed:
            await self._announce_or_fail("remove", removed)
            await self._send_subscriptions(conn, reader, "UNSUBSCRIBE", removed)

    async def _send_subscriptions(
        self, conn: Connection, reader: asyncio.Task[None], command: str, topics: list[str]
    ) -> None:
        """(Un)subscribe and wait for Redis to confirm, so that interest announced
        afterwards never reaches the feed before the subscription is in place."""
        for start in range(0, len(topics), _CHUNK):
            chunk = topics[start : start + _CHUNK]
            channels = [self._data_prefix + topic.encode() for topic in chunk]
            if command == "SUBSCRIBE":
                for channel, topic in zip(channels, chunk, strict=True):
                    self._channel_topics[channel] = topic
                self._live.update(chunk)
            else:
                self._live.difference_update(chunk)
            await self._confirmed(conn, reader, command, channels)
            if command != "SUBSCRIBE":
                for channel in channels:
                    self._channel_topics.pop(channel, None)

    async def _confirmed(
        self, conn: Connection, reader: asyncio.Task[None], command: str, channels: list[bytes]
    ) -> None:
        confirmed = asyncio.get_running_loop().create_future()
        self._confirm[channels[-1]] = confirmed
        await conn.send_command(command, *channels)
        await asyncio.wait({confirmed, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not confirmed.done():
            raise ConnectionError("subscriber connection closed")

    async def _read_data(self, conn: Connection) -> None:
        """Hand each batch of messages to the hub in one pass, as the feed published it.

        A batch arrives in several reads; delivered read by read, the gateway
        would write to every connection several times per batch. So messages
        wait for the batch's end marker (or, should it be lost with a broken
        pipeline, for a quiet socket plus ``_LATE_S``).
        """
        channel_topics, confirm = self._channel_topics, self._confirm
        batch_channel = self._batch_channel
        # redis-py 8 renamed it; both only look at what is already buffered.
        buffered: Callable[[], Awaitable[bool]] = (
            getattr(conn, "can_read", None) or conn.can_read_destructive
        )
        held: list[tuple[str, bytes]] = []
        late: asyncio.TimerHandle | None = None

        def release() -> None:
            nonlocal late
            if late is not None:
                late.cancel()
                late = None
            self._deliver(held)
            held.clear()

        try:
            while True:
                reply = await conn.read_response()
                if isinstance(reply, list) and len(reply) == 3:
                    kind = reply[0]
                    if kind == b"message":
                        if reply[1] == batch_channel:
                            if held:
                                release()
                            continue
                        topic = channel_topics.get(reply[1])
                        if topic is not None:
                            held.append((topic, reply[2]))
                    elif kind in (b"subscribe", b"unsubscribe"):
                        future = confirm.pop(reply[1], None)
                        if future is not None and not future.done():
                            future.set_result(None)
                if held and late is None and not await buffered():
                    late = asyncio.get_running_loop().call_later(_LATE_S, release)
        finally:
            if late is not None:
                late.cancel()

    def _deliver(self, messages: list[tuple[str, bytes]]) -> None:
        topics, handler = self._topics, self._handler
        if handler is None:
            return
        for topic, payload in messages:
            # A message sent before an UNSUBSCRIBE took effect is not delivered.
            if topic in topics:
                self.received += 1
                try:
                    handler(topic, payload)
                except Exception:
                    logger.exception("bus handler failed on %r", topic)
        if self._batch_end is not None:
            self._batch_end()

    async def _announce(self, op: str, topics: Iterable[str]) -> int:
        assert self._redis is not None
        result = await self._scripts["announce"](
            keys=self._keys,
            args=[self._interest_channel, self.gateway_id, self.lease_ms, op, *topics],
        )
        return int(result)

    async def _announce_or_fail(self, op: str, topics: list[str]) -> None:
        for start in range(0, max(len(topics), 1), _CHUNK):
            chunk_op = op if start == 0 or op != "set" else "add"
            if await self._announce(chunk_op, topics[start : start + _CHUNK]) < 0:
                # Our lease ran out: re-announce everything we are subscribed to.
                await self._announce_all()
                return

    async def _announce_all(self) -> None:
        topics = sorted(self._live)
        await self._announce("set", topics[:_CHUNK])
        for start in range(_CHUNK, len(topics), _CHUNK):
            await self._announce("add", topics[start : start + _CHUNK])

    # -- feed: following interest ------------------------------------------------------------

    async def _run_feed(self) -> None:
        await self._forever("feed", self._feed_epoch)

    async def _feed_epoch(self, connected: Callable[[], None]) -> None:
        conn = self._subscriber()
        reader: asyncio.Task[None] | None = None
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            subscribed = asyncio.get_running_loop().create_future()
            reader = asyncio.get_running_loop().create_task(self._read_interest(conn, subscribed))
            await conn.send_command("SUBSCRIBE", self._interest_channel)
            await asyncio.wait({subscribed, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()
                raise ConnectionError("interest connection closed")
            connected()
            period = self.lease_ms / 4000
            while True:
                await self._sweep()
                done, _ = await asyncio.wait({reader}, timeout=period)
                if done:
                    reader.result()
                    raise ConnectionError("interest connection closed")
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, *_OUTAGE):
                    await reader
            with contextlib.suppress(*_OUTAGE):
                await conn.disconnect()

    async def _read_interest(self, conn: Connection, subscribed: asyncio.Future[None]) -> None:
        while True:
            reply = await conn.read_response()
            if not isinstance(reply, list) or len(reply) != 3:
                continue
            if reply[0] == b"subscribe":
                # Changes from here on reach us; the snapshot covers everything before.
                await self._resync()
                subscribed.set_result(None)
            elif reply[0] == b"message":
                seq, op, gateway, topics = msgspec.msgpack.decode(reply[2])
                if seq <= self._seq:
                    continue  # already in the snapshot
                if seq != self._seq + 1:
                    await self._resync()  # a change was missed
                    continue
                self._seq = seq
                self._apply(op, _text(gateway), [_text(t) for t in topics])

    async def _resync(self) -> None:
        assert self._redis is not None
        reply = await self._scripts["snapshot"](keys=self._keys[:2], args=[self._watch_prefix])
        self._seq = int(reply[0])
        seen: set[str] = set()
        for index in range(1, len(reply), 2):
            gateway = _text(reply[index])
            seen.add(gateway)
            self._unconfirmed.pop(gateway, None)
            self._apply("set", gateway, [_text(t) for t in reply[index + 1]])
        deadline = time.monotonic() + self.lease_ms / 1000
        for gateway in list(self._gateway_topics):
            if gateway not in seen:
                # Redis may have restarted empty: give the gateway one lease to re-announce.
                self._unconfirmed.setdefault(gateway, deadline)

    async def _sweep(self) -> None:
        assert self._redis is not None
        await self._scripts["sweep"](
            keys=self._keys[:2], args=[self._interest_channel, self._watch_prefix]
        )
        now = time.monotonic()
        for gateway, deadline in list(self._unconfirmed.items()):
            if now >= deadline:
                del self._unconfirmed[gateway]
                self._apply("drop", gateway, [])

    def _apply(self, op: str, gateway: str, topics: list[str]) -> None:
        """One gateway's change to the feed's view; interest is told on the edges only."""
        if op in ("set", "add"):
            self._unconfirmed.pop(gateway, None)
        current = self._gateway_topics.setdefault(gateway, set())
        if op == "add":
            gained, lost = set(topics) - current, set[str]()
        elif op == "remove":
            gained, lost = set(), current & set(topics)
        elif op == "set":
            wanted = set(topics)
            gained, lost = wanted - current, current - wanted
        elif op == "drop":
            gained, lost = set(), set(current)
            del self._gateway_topics[gateway]
            self._unconfirmed.pop(gateway, None)
        else:
            logger.warning("ignoring interest change %r from %s", op, gateway)
            return
        current |= gained
        current -= lost
        for topic in sorted(gained):
            count = self._watchers.get(topic, 0)
            self._watchers[topic] = count + 1
            if count == 0:
                self._tell(self._on_watch, topic)
        for topic in sorted(lost):
            count = self._watchers[topic] - 1
            if count:
                self._watchers[topic] = count
            else:
                del self._watchers[topic]
                self._tell(self._on_unwatch, topic)

    @staticmethod
    def _tell(handler: InterestHandler | None, topic: str) -> None:
        if handler is None:
            return
        try:
            handler(topic)
        except Exception:
            logger.exception("interest handler failed on %r", topic)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
