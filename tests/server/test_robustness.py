"""What hostile or broken clients leave behind in the server: memory must stay bounded."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets.asyncio.server
from websockets.server import ServerProtocol

from cmcstream import heap
from cmcstream.server.connection import Connection
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode

pytestmark = pytest.mark.slow

OPEN_TIMEOUT_S = 0.5
PARTIAL_REQUEST = b"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """The collector's settings are the process's: put them back as they were."""
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
        else:
            gc.disable()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive() -> int:
    """Server-side connection objects still in memory (the frozen start-up heap excluded)."""
    kinds = (ServerProtocol, websockets.asyncio.server.ServerConnection, Connection)
    return sum(issubclass(type(obj), kinds) for obj in gc.get_objects())


async def settled_count(within_s: float = 2.0) -> int:
    """``alive()`` once the server's handler tasks have wound down (or the time is up)."""
    for _ in range(round(within_s / 0.05)):
        if not alive():
            return 0
        # Nothing to wait on: the objects go when their last reference does.
        await asyncio.sleep(0.05)
    return alive()


@contextlib.asynccontextmanager
async def raw_socket(port: int) -> AsyncIterator[socket.socket]:
    """A plain TCP connection: no client-side WebSocket objects to count or to leak."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        yield sock
    finally:
        sock.close()


async def until_closed(sock: socket.socket, within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(within_s):
            while await loop.sock_recv(sock, 4096):
                pass


async def half_handshake_round(port: int, count: int) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one() -> None:
        async with raw_socket(port) as sock:
            await loop.sock_sendall(sock, PARTIAL_REQUEST)
            await until_closed(sock)

    await asyncio.gather(*(one() for _ in range(count)))
    return loop.time() - started


@pytest.mark.usefixtures("restore_gc")
async def test_rounds_of_half_sent_handshakes_leave_nothing_behind() -> None:
    # As `cmcstream serve` runs: start-up heap frozen, young collections put off
    # to every 50,000 allocations, the node's collection policy ticking.
    async with running_server(speed=1, tune_gc=True, open_timeout_s=OPEN_TIMEOUT_S) as node:
        assert gc.get_threshold()[0] == 50_000
        counts = []
        for _ in range(4):
            took = await half_handshake_round(node.port, 300)
            assert took < 5.0  # every handshake was dropped by the open timeout
            counts.append(await settled_count())
        # Before, each round left its 300 protocols (and 40 objects apiece) in
        # reference cycles that the raised thresholds did not collect in time.
        assert counts == [0, 0, 0, 0]


async def test_failed_handshakes_are_freed_without_the_collector() -> None:
    async with running_server(speed=100, open_timeout_s=OPEN_TIMEOUT_S) as node:
        await settled_count()
        with collector_paused():
            ended = await _fail_handshakes_every_way(node)
            assert ended == 6
            assert await settled_count() == 0


async def _fail_handshakes_every_way(node: RunningNode) -> int:
    """One connection for each way a handshake can fail; returns how many ways."""
    loop = asyncio.get_running_loop()
    upgrade = (
        "GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    ways = [
        # cut off by the open timeout
        (PARTIAL_REQUEST, True),
        # dropped by the client mid-handshake
        (PARTIAL_REQUEST, False),
        # not HTTP at all
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", True),
        # a plain HTTP request that is no upgrade (rejected with an HTTP error)
        (b"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", True),
        # upgraded without a key: closed by the server after the handshake
        (f"{upgrade}\r\n".encode(), True),
        # admitted and welcomed, then dropped by the client
        (f"{upgrade}X-CMC_PRO_API_KEY: {node.demo_key}\r\n\r\n".encode(), False),
    ]
    for data, wait in ways:
        async with raw_socket(node.port) as sock:
            await loop.sock_sendall(sock, data)
            if wait:
                await until_closed(sock)
            else:
                await asyncio.sleep(0.1)
    return len(ways)


@pytest.mark.usefixtures("restore_gc")
def test_collector_collects_the_middle_generation_on_its_clock() -> None:
    gc.disable()  # only this test's collections count
    collector = heap.Collector(every_s=5.0)
    gc.collect()
    assert collector.tick(100.0) is False  # the first tick starts the clock
    gc.collect(0)  # a young collection moves its survivors up: a middle one is due
    assert collector.tick(104.9) is False
    assert collector.tick(105.0) is True
    assert gc.get_count()[1] == 0
    assert collector.tick(111.0) is False  # nothing moved up since
    gc.collect(0)
    assert collector.tick(111.0) is True
