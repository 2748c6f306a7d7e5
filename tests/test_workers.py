"""The supervisor of ``serve --workers``, with small stand-in children; and its command lines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cmcstream.cli import _config, _feed_args, _gateway_args, feed, gateway, serve
from cmcstream.config import ServerConfig
from cmcstream.workers import ChildFailed, Role, Supervisor, reserve_port

READY = "from cmcstream.workers import notify_ready; notify_ready(); "


def child(name: str, code: str) -> Role:
    return Role(name, [sys.executable, "-c", code])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.asynccontextmanager
async def supervising(supervisor: Supervisor) -> AsyncIterator[Supervisor]:
    try:
        yield supervisor
    finally:
        for each in supervisor.children.values():
            if each.proc.returncode is None:
                each.proc.kill()
                await each.proc.wait()


async def test_phases_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # Each child notes when it is ready and when it is told to stop.
    code = (
        "import signal, sys, time\n"
        "from cmcstream.workers import notify_ready\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "name = sys.argv[1]\n"
        "def stop(*_):\n"
        "    log.write('stop ' + name + '\\n'); time.sleep(0.2); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(0.3 if name == 'feed' else 0)\n"
        "log.write('ready ' + name + '\\n'); notify_ready()\n"
        "while True: time.sleep(1)\n"
    )
    roles = [
        [Role("feed", [sys.executable, "-c", code, "feed"])],
        [Role(f"gw{i}", [sys.executable, "-c", code, f"gw{i}"]) for i in (1, 2)],
    ]
    lines: list[str] = []
    async with supervising(Supervisor(roles, report=lines.append)) as supervisor:
        await supervisor.start()
        stop = asyncio.Event()
        stop.set()
        await supervisor.run(stop)
        events = log.read_text().split("\n")
        assert events[0] == "ready feed"
        assert sorted(events[1:3]) == ["ready gw1", "ready gw2"]
        assert sorted(events[3:5]) == ["stop gw1", "stop gw2"]
        assert events[5] == "stop feed"
        assert all(each.proc.returncode == 0 for each in supervisor.children.values())
    assert lines == []


async def test_a_child_that_exits_before_it_is_ready_fails_the_start() -> None:
    roles = [[child("feed", READY + "import time; time.sleep(30)")], [child("gw", "exit(3)")]]
    async with supervising(Supervisor(roles, report=print)) as supervisor:
        with pytest.raises(ChildFailed, match="gw exited with code 3 before it was ready"):
            await asyncio.wait_for(supervisor.start(), 10)
        # The feed started before it was stopped with the rest.
        assert supervisor.children["feed"].proc.returncode == -signal.SIGTERM


async def test_a_dead_child_is_reported_and_started_again(tmp_path: Path) -> None:
    roles = [[child("gw", READY + "import time; time.sleep(30)")]]
    lines: list[str] = []
    supervisor = Supervisor(roles, report=lines.append, restart_delay_s=0.05)
    async with supervising(supervisor):
        await supervisor.start()
        first = supervisor.pids["gw"]
        stop = asyncio.Event()
        running = asyncio.get_running_loop().create_task(supervisor.run(stop))
        os.kill(first, signal.SIGKILL)
        async with asyncio.timeout(10):
            while supervisor.pids["gw"] == first:  # noqa: ASYNC110 (the pid changes elsewhere)
                await asyncio.sleep(0.02)
        assert lines[0] == f"gw (pid {first}) was killed by SIGKILL"
        assert lines[1] == f"gw started again (pid {supervisor.pids['gw']})"
        stop.set()
        await asyncio.wait_for(running, 10)
        assert supervisor.children["gw"].proc.returncode is not None


async def test_a_child_that_keeps_dying_stops_everything() -> None:
    roles = [
        [child("feed", READY + "import time; time.sleep(30)")],
        [child("gw", READY + "import time; time.sleep(0.05)")],
    ]
    lines: list[str] = []
    supervisor = Supervisor(roles, report=lines.append, restart_delay_s=0.01, max_deaths=3)
    async with supervising(supervisor):
        await supervisor.start()
        with pytest.raises(ChildFailed, match="gw died 3 times"):
            await asyncio.wait_for(supervisor.run(asyncio.Event()), 20)
        assert supervisor.children["feed"].proc.returncode == -signal.SIGTERM
    assert sum("exited with code 0" in line for line in lines) == 3


async def test_a_child_deaf_to_sigterm_is_killed_after_its_grace() -> None:
    # Deaf before it says it is ready, so the SIGTERM cannot come first.
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + READY
    code += "time.sleep(30)"
    lines: list[str] = []
    supervisor = Supervisor([[child("gw", code)]], report=lines.append, stop_within_s=0.3)
    async with supervising(supervisor):
        await supervisor.start()
        await asyncio.wait_for(supervisor.stop(), 5)
        assert supervisor.children["gw"].proc.returncode == -signal.SIGKILL
    assert lines == [f"gw (pid {supervisor.pids['gw']}) killed: too slow"]


def test_the_reserved_port_is_shared_only_with_reuse_port() -> None:
    reserved = reserve_port("127.0.0.1", 0)
    try:
        port = reserved.getsockname()[1]
        assert port != 0
        with socket.socket() as plain:
            with pytest.raises(OSError, match="in use"):
                plain.bind(("127.0.0.1", port))
        with socket.socket() as sharing:
            sharing.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sharing.bind(("127.0.0.1", port))
            sharing.listen()
    finally:
        reserved.close()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with pytest.raises(OSError, match="in use"):
            reserve_port("127.0.0.1", listening.getsockname()[1])


def test_children_get_the_settings_serve_was_given(tmp_path: Path) -> None:
    """Every option of ``serve`` reaches the feed or the gateways it starts."""
    argv = [
        *("--host", "127.0.0.2", "--port", "0", "--db", str(tmp_path / "k.db")),
        *("--seed", "7", "--speed", "12.5", "--start", "2026-05-13T00:00:00Z"),
        *("--universe-size", "321", "--dex-activity", "0.25", "--ping-interval-ms", "777"),
        *("--idle-timeout", "12.5", "--max-frame-bytes", "4096", "--counting", "per_request"),
        *("--billing", "per_message", "--slow-timeout", "3.5", "--no-metrics"),
    ]
    given = _config(serve.make_context("serve", argv).params)
    assert given != ServerConfig(tune_gc=True)
    on_feed = _config(feed.make_context("feed", _feed_args(given)).params)
    on_gateway = _config(gateway.make_context("gateway", _gateway_args(given, 4321)).params)
    for name in ("seed", "speed", "start_ms", "universe_size", "dex_activity"):
        assert getattr(on_feed, name) == getattr(given, name), name
    assert on_gateway.port == 4321
    for name in ServerConfig.__dataclass_fields__:
        if name not in ("port", "seed", "speed", "start_ms", "universe_size", "dex_activity"):
            assert getattr(on_gateway, name) == getattr(given, name), name
