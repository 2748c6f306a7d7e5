"""Buses under test: the in-process one, and Redis (the shared server, or a private one to kill)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from cmcstream.bus.base import Bus
from cmcstream.bus.memory import MemoryBus
from cmcstream.bus.redis import RedisBus

SHARED_REDIS = "redis://127.0.0.1:6379/0"
TIMEOUT = 5.0


async def eventually(check: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Wait until ``check()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Recorder:
    """A gateway's hub stand-in (what it received) and a feed's interest (what it was told)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.batches = 0
        self.told: list[tuple[str, str]] = []

    def attach_gateway(self, bus: Bus) -> None:
        bus.set_handler(lambda topic, payload: self.received.append((topic, payload)), self._end)

    def attach_feed(self, bus: Bus) -> None:
        bus.set_interest(
            lambda topic: self.told.append(("watch", topic)),
            lambda topic: self.told.append(("unwatch", topic)),
        )

    def _end(self) -> None:
        self.batches += 1

    @property
    def watched(self) -> set[str]:
        state: set[str] = set()
        for what, topic in self.told:
            (state.add if what == "watch" else state.discard)(topic)
        return state


class Deployment:
    """Makes started buses for one feed and its gateways, and closes them at the end."""

    multi_gateway = False

    def __init__(self) -> None:
        self.buses: list[Bus] = []

    async def gateway(self) -> Bus:
        raise NotImplementedError

    async def feed(self) -> Bus:
        raise NotImplementedError

    async def close(self) -> None:
        for bus in self.buses:
            await bus.aclose()


class MemoryDeployment(Deployment):
    """One process: the feed and its single gateway share the bus."""

    def __init__(self) -> None:
        super().__init__()
        self.bus = MemoryBus()
        self.buses.append(self.bus)

    async def gateway(self) -> Bus:
        return self.bus

    async def feed(self) -> Bus:
        return self.bus


class RedisDeployment(Deployment):
    """Each part its own :class:`RedisBus`, as each would be its own process."""

    multi_gateway = True

    def __init__(self, url: str, prefix: str, lease_ms: int = 15_000) -> None:
        super().__init__()
        self.url, self.prefix, self.lease_ms = url, prefix, lease_ms

    async def make(self, **kwargs: object) -> RedisBus:
        options: dict[str, object] = {"prefix": self.prefix, "lease_ms": self.lease_ms, **kwargs}
        bus = RedisBus(self.url, **options)  # type: ignore[arg-type]
        await bus.start()
        self.buses.append(bus)
        return bus

    async def gateway(self) -> Bus:
        return await self.make()

    async def feed(self) -> Bus:
        return await self.make()


def _require_shared_redis() -> None:
    client = redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - the environment guarantees it
        pytest.fail(f"Redis must run on 127.0.0.1:6379 for these tests: {exc}")
    finally:
        client.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of its own on the shared Redis, whose keys are deleted afterwards."""
    _require_shared_redis()
    name = f"cmcstream-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
async def deployment(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Deployment]:
    made: Deployment = (
        MemoryDeployment() if request.param == "memory" else RedisDeployment(SHARED_REDIS, prefix)
    )
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def redis_deployment(prefix: str) -> AsyncIterator[RedisDeployment]:
    made = RedisDeployment(SHARED_REDIS, prefix)
    try:
        yield made
    finally:
        await made.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that a test may kill and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # pragma: no cover - installed wherever the tests run
            pytest.fail("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + TIMEOUT
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
