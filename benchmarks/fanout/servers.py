"""The servers under test: how each starts, says it is ready, and tells its port.

- ``cmcstream``: ``python -m cmcstream serve`` (the real command), or, when a
  scenario needs a setting the command has no flag for, the same Node through
  :mod:`fanout.cmcstream_node`.
- ``raw``, ``broadcast``: the Python peers in ``benchmarks/peers/``.
- ``node``: the Node.js peer on the ``ws`` package (``benchmarks/peers/node``),
  installed with ``npm ci`` from its lock file when ``node_modules`` is missing.

Every server runs with the same frames, the same simulated start and speed, on
127.0.0.1 and a port of its own choosing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fanout.procs import Child, ChildFailed, spawn

__all__ = [
    "ALL_SERVERS",
    "PEER_TITLES",
    "Launch",
    "Running",
    "prepare_node_peer",
    "start_server",
]

HERE: Final = Path(__file__).resolve().parent
PEERS: Final = HERE.parent / "peers"
NODE_DIR: Final = PEERS / "node"
ALL_SERVERS: Final = ("cmcstream", "raw", "broadcast", "node")
PEER_TITLES: Final = {
    "raw": "raw ceiling (pre-framed, one write per connection per tick)",
    "broadcast": "websockets.broadcast() (a first Python server)",
    "node": "Node.js ws",
}
_LISTENING: Final = re.compile(r"listening on ws://[\d.]+:(\d+)(/\S*)")
_READY: Final = re.compile(r"READY port=(\d+)")


@dataclass(frozen=True)
class Launch:
    """What a server is started with."""

    speed: float
    start_ms: int
    seed: int
    universe_size: int
    db: Path
    frames: Path
    dex_activity: float | None = None
    slow_timeout_s: float | None = None
    bus: str | None = None  # a redis:// URL: the feed reaches the gateway through Redis
    metrics: bool = True  # cmcstream's GET /metrics and its push-latency sampling


@dataclass
class Running:
    name: str
    child: Child
    port: int
    path: str
    launcher: bool = False

    @property
    def pid(self) -> int:
        return self.child.pid

    def release(self) -> None:
        """Let a peer start ticking (peers start held; cmcstream ticks from its start)."""
        if self.name != "cmcstream":
            self.child.signal(signal.SIGUSR2)


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    return env


def _cmcstream_argv(launch: Launch) -> tuple[list[str], bool]:
    common = [
        "--port",
        "0",
        "--db",
        str(launch.db),
        "--seed",
        str(launch.seed),
        "--speed",
        repr(launch.speed),
        "--start",
        str(launch.start_ms),
        "--universe-size",
        str(launch.universe_size),
        # Idle closes (no client frame, no push) would end quiet connections mid-run.
        "--idle-timeout",
        "600",
    ]
    if not launch.metrics:
        common.append("--no-metrics")
    if launch.dex_activity is None and launch.slow_timeout_s is None and launch.bus is None:
        return [sys.executable, "-m", "cmcstream", "serve", *common], False
    extra: list[str] = []
    if launch.dex_activity is not None:
        extra += ["--dex-activity", repr(launch.dex_activity)]
    if launch.slow_timeout_s is not None:
        extra += ["--slow-timeout", repr(launch.slow_timeout_s)]
    if launch.bus is not None:
        extra += ["--bus", launch.bus]
    return [sys.executable, str(HERE / "cmcstream_node.py"), *common, *extra], True


async def start_server(name: str, launch: Launch, cpu: int | None, within_s: float) -> Running:
    """Start server ``name`` and wait until it listens."""
    peer_args = [
        "--frames",
        str(launch.frames),
        "--speed",
        repr(launch.speed),
        "--start",
        str(launch.start_ms),
        "--hold",
    ]
    launcher = False
    if name == "cmcstream":
        argv, launcher = _cmcstream_argv(launch)
        child = await spawn(name, argv, cpu=cpu, env=_python_env())
    elif name in ("raw", "broadcast"):
        script = PEERS / f"{name}_server.py"
        child = await spawn(name, [sys.executable, str(script), *peer_args], cpu=cpu)
    elif name == "node":
        node = shutil.which("node")
        if node is None:
            raise ChildFailed("node is not on PATH")
        child = await spawn(name, [node, str(NODE_DIR / "server.js"), *peer_args], cpu=cpu)
    else:
        raise ValueError(f"unknown server {name!r}")
    try:
        port, path = await _ready(child, within_s)
    except BaseException:
        await child.stop()
        raise
    return Running(name, child, port, path, launcher)


async def _ready(child: Child, within_s: float) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    port: int | None = None
    path = "/v1"
    while True:
        line = await child.line(max(0.1, deadline - loop.time()))
        if match := _LISTENING.search(line):
            port, path = int(match.group(1)), match.group(2)
        elif match := _READY.search(line):
            return int(match.group(1)), path
        elif line.startswith("Press Ctrl-C") and port is not None:
            return port, path


def prepare_node_peer(timeout: float = 180.0) -> str | None:
    """Make the Node peer runnable; returns why it cannot run, or None when it can."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        return "node is not on PATH"
    if (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        return None
    if npm is None:
        return "npm is not on PATH (needed once: npm ci in benchmarks/peers/node)"
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"npm ci did not finish in {timeout:g} s"
    if done.returncode != 0:
        return f"npm ci failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None
