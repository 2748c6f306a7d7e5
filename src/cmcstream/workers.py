"""Several processes on one machine: one feed and N gateways on one port, supervised.

``cmcstream serve --workers N`` runs ``cmcstream feed`` and N ``cmcstream
gateway --reuse-port`` as child processes: the same commands that run on
separate machines, joined by the same Redis. Each gateway listens on the
port itself with ``SO_REUSEPORT``, so the kernel spreads new connections
across their accept queues (no process is woken for a connection another
takes, and a busy gateway is not handed more because it happened to wake
first). The supervisor binds the port too, without listening, before any
child starts: a port in use fails at once with one clear message, port 0
resolves to one port for every gateway, and the port stays held for the
gateways while one restarts.

The supervisor starts the feed, waits until it is ready, then starts the
gateways and waits until each listens. A child that dies after that is
reported and started again (a gateway's clients reconnect to the others
meanwhile); one that keeps dying stops everything. SIGINT or SIGTERM stops
the gateways (their clients get 1001), then the feed; a child that outstays
its grace is killed. Children whose supervisor dies, even by ``kill -9``,
notice within half a second and stop: no orphans.

A child tells its supervisor it is ready by writing a line to the pipe whose
descriptor is in ``CMCSTREAM_READY_FD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PARENT_ENV",
    "READY_FD_ENV",
    "ChildFailed",
    "Role",
    "Supervisor",
    "notify_ready",
    "python_argv",
    "reserve_port",
    "supervised",
    "watch_parent",
]

READY_FD_ENV = "CMCSTREAM_READY_FD"
PARENT_ENV = "CMCSTREAM_SUPERVISOR_PID"


class ChildFailed(RuntimeError):
    """A child exited before it was ready, or kept dying."""


# -- the child's side ----------------------------------------------------------------------------


def supervised() -> bool:
    """Whether this process runs under a supervisor (which prints the banner)."""
    return READY_FD_ENV in os.environ


def notify_ready() -> None:
    """Tell the supervisor, if any, that this process is serving."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(int(fd), b"ready\n")
        os.close(int(fd))


async def watch_parent(stop: asyncio.Event, period_s: float = 0.5) -> None:
    """Set ``stop`` when the supervisor that started this process is gone."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return
    while not stop.is_set():
        if os.getppid() != int(parent):
            stop.set()
            return
        await asyncio.sleep(period_s)


# -- the supervisor's side -----------------------------------------------------------------------


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` with ``SO_REUSEPORT`` without listening; port 0 picks one.

    Raises:
        OSError: EADDRINUSE when something listens there already.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class Role:
    """One child: its name in reports and its command line."""

    name: str
    argv: Sequence[str]


@dataclass(slots=True)
class _Child:
    role: Role
    proc: asyncio.subprocess.Process
    ready: asyncio.Task[bool]
    exited: asyncio.Task[int]
    deaths: deque[float] = field(default_factory=deque)


class Supervisor:
    """Starts children in phases, restarts the ones that die, stops them all.

    Args:
        phases: children to start, phase by phase: each phase is ready before
            the next starts; stopping goes the other way.
        report: where lines for the operator go.
        ready_within_s: how long a child may take to become ready.
        stop_within_s: how long a child may take to stop after SIGTERM.
        restart_delay_s: pause before a dead child is started again.
        max_deaths: deaths of one child within ``death_window_s`` that stop everything.
    """

    def __init__(
        self,
        phases: Sequence[Sequence[Role]],
        *,
        report: Callable[[str], None],
        env: dict[str, str] | None = None,
        ready_within_s: float = 300.0,
        stop_within_s: float = 15.0,
        restart_delay_s: float = 1.0,
        max_deaths: int = 5,
        death_window_s: float = 60.0,
    ) -> None:
        self.phases = [list(phase) for phase in phases]
        self.report = report
        self.env = dict(os.environ if env is None else env)
        self.ready_within_s = ready_within_s
        self.stop_within_s = stop_within_s
        self.restart_delay_s = restart_delay_s
        self.max_deaths = max_deaths
        self.death_window_s = death_window_s
        self.children: dict[str, _Child] = {}

    @property
    def pids(self) -> dict[str, int]:
        return {name: child.proc.pid for name, child in self.children.items()}

    async def _spawn(self, role: Role, deaths: deque[float] | None = None) -> _Child:
        read_end, write_end = os.pipe()
        try:
            env = {**self.env, READY_FD_ENV: str(write_end), PARENT_ENV: str(os.getpid())}
            proc = await asyncio.create_subprocess_exec(
                *role.argv, env=env, pass_fds=(write_end,), stdin=asyncio.subprocess.DEVNULL
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        loop = asyncio.get_running_loop()
        child = _Child(
            role,
            proc,
            loop.create_task(_read_ready(read_end)),
            loop.create_task(proc.wait()),
            deaths if deaths is not None else deque(),
        )
        self.children[role.name] = child
        return child

    async def start(self) -> None:
        """Start every phase in turn; a child that exits before it is ready stops all.

        Raises:
            ChildFailed: with what the child's exit was.
        """
        try:
            for phase in self.phases:
                children = [await self._spawn(role) for role in phase]
                for child in children:
                    await self._until_ready(child)
        except BaseException:
            await self.stop()
            raise

    async def _until_ready(self, child: _Child) -> None:
        done, _ = await asyncio.wait(
            {child.ready, child.exited},
            timeout=self.ready_within_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if child.ready in done and child.ready.result():
            return
        if not done:
            raise ChildFailed(f"{child.role.name} was not ready within {self.ready_within_s:g} s")
        # It closed the pipe without a word: it is exiting, or has.
        try:
            code = await asyncio.wait_for(asyncio.shield(child.exited), self.stop_within_s)
        except TimeoutError:
            raise ChildFailed(
                f"{child.role.name} closed its ready pipe without being ready"
            ) from None
        raise ChildFailed(f"{child.role.name} {_exit_text(code)} before it was ready")

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop`` is set, then stop every child.

        Raises:
            ChildFailed: a child died ``max_deaths`` times within ``death_window_s``.
        """
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait())
        try:
            while True:
                by_task = {child.exited: child for child in self.children.values()}
                done, _ = await asyncio.wait(
                    {stopping, *by_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    return
                for task in done:
                    await self._restart(by_task[task], stop)
                    if stop.is_set():
                        return
        finally:
            stopping.cancel()
            await self.stop()

    async def _restart(self, child: _Child, stop: asyncio.Event) -> None:
        name = child.role.name
        self.report(f"{name} (pid {child.proc.pid}) {_exit_text(child.exited.result())}")
        now = time.monotonic()
        deaths = child.deaths
        deaths.append(now)
        while deaths and now - deaths[0] > self.death_window_s:
            deaths.popleft()
        if len(deaths) >= self.max_deaths:
            raise ChildFailed(
                f"{name} died {len(deaths)} times within {self.death_window_s:g} s; stopping"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.restart_delay_s)
        if stop.is_set():
            return
        again = await self._spawn(child.role, deaths)
        self.report(f"{name} started again (pid {again.proc.pid})")

    async def stop(self) -> None:
        """SIGTERM each phase's children, last phase first; SIGKILL those that outstay."""
        for phase in reversed(self.phases):
            children = [self.children[r.name] for r in phase if r.name in self.children]
            alive = [c for c in children if c.proc.returncode is None]
            for child in alive:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
            if alive:
                _, late = await asyncio.wait({c.exited for c in alive}, timeout=self.stop_within_s)
                for child in alive:
                    if child.exited in late:
                        self.report(f"{child.role.name} (pid {child.proc.pid}) killed: too slow")
                        with contextlib.suppress(ProcessLookupError):
                            child.proc.kill()
                if late:
                    await asyncio.wait(late)
            for child in children:
                child.ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.ready


async def _read_ready(fd: int) -> bool:
    """True when the child writes its ready line; False if it closes the pipe first."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        return (await reader.readline()).strip() == b"ready"
    finally:
        transport.close()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def python_argv(*args: str) -> list[str]:
    """A ``cmcstream`` command line run by this interpreter."""
    return [sys.executable, "-m", "cmcstream", *args]
