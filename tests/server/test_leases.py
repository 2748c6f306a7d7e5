"""Cluster-wide connection leases in Redis: the limit across gateways, expiry, outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cmcstream.app import App
from cmcstream.bus.memory import MemoryBus
from cmcstream.config import ServerConfig
from cmcstream.server.keystore import KeyStore
from cmcstream.server.leases import Lease, RedisLeases
from tests.redis_support import SHARED_URL, private_redis, shared_prefix
from tests.server.conftest import closed_with, dial, welcomed

KEY = "k-0123456789"


@pytest.fixture
def prefix() -> Iterator[str]:
    with shared_prefix() as unique:
        yield unique


@contextlib.asynccontextmanager
async def leases(prefix: str, url: str = SHARED_URL, **kwargs: float) -> AsyncIterator[RedisLeases]:
    made = RedisLeases(url, prefix=prefix, **kwargs)
    await made.start()
    try:
        yield made
    finally:
        await made.aclose()


async def take(owner: RedisLeases, n: int, limit: int = 10) -> list[Lease]:
    taken = await asyncio.gather(*(owner.acquire(KEY, limit) for _ in range(n)))
    assert all(lease is not None for lease in taken)
    return [lease for lease in taken if lease is not None]


async def until(check: object, within_s: float) -> float:
    """Seconds until ``await check()`` is true; fails after ``within_s``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await check():  # type: ignore[operator]
        assert loop.time() - started < within_s, f"not within {within_s} s"
        await asyncio.sleep(0.05)
    return loop.time() - started


async def test_the_limit_holds_across_gateways(prefix: str) -> None:
    async with leases(prefix) as a, leases(prefix) as b:
        await take(a, 6)
        held_by_b = await take(b, 4)
        assert await a.acquire(KEY, 10) is None
        assert await b.acquire(KEY, 10) is None
        assert await a.count(KEY) == 10
        held_by_b[0].release()
        held_by_b[0].release()  # twice is once
        assert await a.acquire(KEY, 10) is not None
        assert await b.acquire(KEY, 10) is None


async def test_concurrent_takes_never_exceed_the_limit(prefix: str) -> None:
    async with leases(prefix) as a, leases(prefix) as b:
        results = await asyncio.gather(
            *(owner.acquire(KEY, 10) for _ in range(15) for owner in (a, b))
        )
        assert sum(lease is not None for lease in results) == 10
        assert await a.count(KEY) == 10


async def test_refreshed_leases_outlive_their_ttl(prefix: str) -> None:
    async with leases(prefix, ttl_s=0.3) as a:
        await take(a, 2)
        await asyncio.sleep(1.0)
        assert await a.count(KEY) == 2


async def test_a_dead_gateways_leases_expire_within_the_ttl(prefix: str) -> None:
    async with leases(prefix) as survivor:
        dead = RedisLeases(SHARED_URL, prefix=prefix, ttl_s=0.6)
        await dead.start()
        await take(dead, 10)
        # Dies without a word: no refresh and no release from now on.
        assert dead._task is not None
        assert dead._redis is not None
        dead._task.cancel()
        await dead._redis.aclose()
        assert await survivor.acquire(KEY, 10) is None

        async def free() -> bool:
            return await survivor.count(KEY) == 0

        assert await until(free, within_s=2.0) <= 0.6 + 0.3
        await take(survivor, 10)


async def test_unreachable_redis_fails_with_its_url() -> None:
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1/"):
        await RedisLeases("redis://127.0.0.1:1/0", timeout_s=0.5).start()


async def test_leases_come_back_with_a_restarted_redis(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        async with leases("restart", url=server.url, ttl_s=0.6, timeout_s=0.3) as a:
            await take(a, 3)
            server.stop()
            # Admitted on the gateway's own count while Redis is away.
            await take(a, 2)
            server.start()
            async with leases("restart", url=server.url) as b:

                async def restored() -> bool:
                    return await b.count(KEY) == 5

                await until(restored, within_s=3.0)
                assert await b.acquire(KEY, 5) is None


# -- through gateways ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gateway(db: Path, prefix: str) -> AsyncIterator[App]:
    config = ServerConfig(host="127.0.0.1", port=0, universe_size=600, dex_warm_up=False)
    store = KeyStore(db)
    app = App(
        config,
        store,
        bus=MemoryBus(),
        feed=False,
        leases=RedisLeases(SHARED_URL, prefix=prefix),
    )
    await app.start()
    try:
        yield app
    finally:
        await app.shutdown()
        store.close()


async def test_the_eleventh_connection_across_two_gateways_gets_4004(
    tmp_path: Path, prefix: str
) -> None:
    db = tmp_path / "keys.db"
    store = KeyStore(db)
    key = store.create(plan="startup").key
    store.close()
    async with gateway(db, prefix) as one, gateway(db, prefix) as two:
        async with contextlib.AsyncExitStack() as stack:
            for i in range(10):
                ws = await stack.enter_async_context(dial((one, two)[i % 2].url, key))
                await welcomed(ws)
            for extra_on in (one, two):
                async with dial(extra_on.url, key) as extra:
                    assert await closed_with(extra) == (4004, [])
        # Every connection closed: the slots are back at once, not after a ttl.
        async with dial(one.url, key) as again:
            await welcomed(again)
