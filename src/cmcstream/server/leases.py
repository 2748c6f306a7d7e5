"""Cluster-wide connection limits: one lease in Redis per open connection.

A key's leases are the members of one sorted set, ``{prefix}:conns:{key}``,
each scored by its expiry in Redis's own clock (so gateways on machines whose
clocks disagree still agree). Taking a lease is one Lua script: drop the
expired members, count the rest, add one if the count is under the plan's
limit. Every gateway pushes its leases' expiry forward every ``ttl / 3``; a
gateway that dies (``kill -9``, a lost machine) stops doing so, and every
connection it held is free again at most ``ttl`` after its death.

Redis calls never sit on a handshake's path one by one: takes, releases and
refreshes queue up and go out together in one pipeline from one task, so a
connect storm costs a few round trips and one Redis connection.

When Redis cannot be reached, a handshake is admitted on the gateway's own
count (which :func:`cmcstream.server.auth.admit` checked already) rather than
refused: the gateway keeps serving, and its refresh puts every lease it holds
back into Redis once Redis answers again. The key may then exceed its limit
across gateways for as long as the outage lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from cmcstream.config import DEFAULT_LEASE_TTL_S

__all__ = ["DEFAULT_TTL_S", "Lease", "Leases", "RedisLeases"]

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = DEFAULT_LEASE_TTL_S

# KEYS[1] the key's set; ARGV: member, limit, ttl ms. 1 if taken, 0 if the key is full.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS[1] the key's set; ARGV: ttl ms, then members. Unconditional: after an outage
# or a Redis restart, a gateway's open connections count again.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1
"""


class Lease(Protocol):
    def release(self) -> None:
        """Give the slot back (never blocks; idempotent)."""
        ...


class Leases(Protocol):
    """What a gateway asks before it admits a connection."""

    async def start(self) -> None: ...

    async def acquire(self, key: str, limit: int) -> Lease | None:
        """A lease on one of ``key``'s ``limit`` connections, or None if all are taken."""
        ...

    async def aclose(self) -> None:
        """Release every lease still held and disconnect."""
        ...


@dataclass(eq=False, slots=True)
class _RedisLease:
    owner: RedisLeases
    key: str
    member: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.owner._release(self.key, self.member)


@dataclass(slots=True)
class _Take:
    key: str
    member: str
    limit: int
    done: asyncio.Future[bool] = field(repr=False)


class RedisLeases:
    """Connection leases in Redis, shared by every gateway using the same Redis and prefix.

    Args:
        url: the Redis server, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: namespace of the keys, the bus's prefix.
        gateway_id: names this gateway's leases (readable in Redis); a unique
            default from host name and process id.
        ttl_s: a lease's life without a refresh, the bound on how long a dead
            gateway's connections stay counted.
        timeout_s: how long one round trip to Redis may take before the
            gateway acts on its own count.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cmcstream",
        gateway_id: str | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = 2.0,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease's ttl must be positive")
        self.url = url
        self.prefix = prefix
        self.gateway_id = gateway_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.refresh_s = ttl_s / 3
        self.timeout_s = timeout_s
        self._redis: redis.Redis | None = None
        self._held: dict[str, set[str]] = {}
        self._takes: list[_Take] = []
        self._releases: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seq = itertools.count()
        self._unreachable = False

    def set_key(self, key: str) -> str:
        return f"{self.prefix}:conns:{key}"

    @property
    def held(self) -> int:
        return sum(len(members) for members in self._held.values())

    async def start(self) -> None:
        """Connect, and fail here, with the URL in the message, if Redis does not answer."""
        client = redis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            max_connections=4,
        )
        try:
            await cast(Awaitable[Any], client.ping())
        except RedisError as exc:
            await client.aclose()
            raise ConnectionError(f"Redis at {self.url} is unreachable: {exc}") from exc
        self._redis = client
        self._take_script = client.register_script(_TAKE)
        self._refresh_script = client.register_script(_REFRESH)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leases")

    async def acquire(self, key: str, limit: int) -> Lease | None:
        member = f"{self.gateway_id}:{next(self._seq)}"
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._takes.append(_Take(key, member, limit, done))
        self._wake.set()
        if not await done:
            return None
        self._held.setdefault(key, set()).add(member)
        return _RedisLease(self, key, member)

    def _release(self, key: str, member: str) -> None:
        members = self._held.get(key)
        if members is not None:
            members.discard(member)
            if not members:
                del self._held[key]
        self._releases.append((key, member))
        self._wake.set()

    async def count(self, key: str) -> int:
        """Unexpired leases of ``key`` across the cluster (for operators and tests)."""
        assert self._redis is not None, "not started"
        # The score is Redis's clock in ms; an expired member still in the set is not counted.
        seconds, micros = await self._redis.time()
        now = seconds * 1000 + micros // 1000
        return int(await self._redis.zcount(self.set_key(key), f"({now}", "+inf"))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for take in self._takes:
            if not take.done.done():
                take.done.set_result(False)
        self._takes.clear()
        for key, members in self._held.items():
            self._releases.extend((key, m) for m in members)
        self._held.clear()
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._send([])
            await self._redis.aclose()
            self._redis = None

    # -- the one task that talks to Redis ---------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_refresh - loop.time()))
            self._wake.clear()
            takes, self._takes = self._takes, []
            # After a failure every send refreshes, so leases come back with Redis.
            refresh = self._unreachable or loop.time() >= next_refresh
            if refresh:
                next_refresh = loop.time() + self.refresh_s
            try:
                await self._send(takes, refresh=refresh)
            except Exception as exc:  # any failure: act on the local count, never hang a handshake
                if not self._unreachable:
                    logger.warning("Redis unreachable; limiting connections locally: %s", exc)
                self._unreachable = True
                for take in takes:
                    if not take.done.done():
                        take.done.set_result(True)  # admit() checked this gateway's own count
            else:
                if self._unreachable:
                    logger.warning("Redis reachable again; connection leases restored")
                self._unreachable = False

    async def _send(self, takes: list[_Take], *, refresh: bool = False) -> None:
        """One pipeline: the queued takes and releases, and a refresh of every lease held.

        Releases lost with a failed pipeline expire with their ttl.
        """
        client = self._redis
        assert client is not None
        releases, self._releases = self._releases, []
        pipe = client.pipeline(transaction=False)
        for take in takes:
            await self._take_script(
                keys=[self.set_key(take.key)],
                args=[take.member, take.limit, self.ttl_ms],
                client=pipe,
            )
        for key, member in releases:
            pipe.zrem(self.set_key(key), member)
        if refresh:
            for key, members in self._held.items():
                await self._refresh_script(
                    keys=[self.set_key(key)], args=[self.ttl_ms, *members], client=pipe
                )
        if not len(pipe):
            return
        results = await pipe.execute()
        for take, taken in zip(takes, results, strict=False):
            if not take.done.done():
                take.done.set_result(bool(taken))
