"""Child processes of a benchmark run: started pinned, read line by line, always ended.

Every child runs in its own session (so a terminal's Ctrl-C reaches only the
harness, which then ends them in order), is pinned to one core where the
machine allows it, and is told by the kernel to die with the harness
(``PR_SET_PDEATHSIG``) should the harness itself be killed. :func:`kill_all`
ends whatever is still running; ``run.py`` calls it on every way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Child", "ChildFailed", "can_pin", "kill_all", "spawn"]

_LIVE: set[Child] = set()
_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A child exited, or said nothing in time, while the harness waited on it."""


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def _pre_exec(cpu: int | None) -> Callable[[], None]:
    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})

    return setup


class Child:
    """One started process: its output lines, its stderr tail, its end."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @property
    def pinned_to(self) -> list[int]:
        try:
            return sorted(os.sched_getaffinity(self.pid))
        except OSError:
            return []

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            await self.lines.put(line.decode(errors="replace").rstrip("\n"))
        await self.lines.put(None)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr_tail.append(line.decode(errors="replace").rstrip("\n"))

    async def line(self, within_s: float) -> str:
        """The next line of standard output."""
        try:
            line = await asyncio.wait_for(self.lines.get(), within_s)
        except TimeoutError:
            raise ChildFailed(
                f"{self.name}: nothing said in {within_s:g} s{self._tail()}"
            ) from None
        if line is None:
            await self.proc.wait()
            raise ChildFailed(f"{self.name} exited with {self.proc.returncode}{self._tail()}")
        return line

    def _tail(self) -> str:
        tail = "\n".join(list(self.stderr_tail)[-12:])
        return f"; stderr:\n{tail}" if tail else ""

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to the whole group after ``grace`` seconds."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        _LIVE.discard(self)


async def expect(child: Child, event: str, within_s: float) -> dict[str, Any]:
    """The next JSON line ``child`` prints with ``"ev": event`` (an ``error`` one raises)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        line = await child.line(max(0.1, deadline - loop.time()))
        if not line.startswith("{"):
            continue
        reply: dict[str, Any] = json.loads(line)
        if reply.get("ev") == "error":
            raise ChildFailed(f"{child.name}: {reply.get('msg')}")
        if reply.get("ev") == event:
            return reply


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    cpu: int | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bool = False,
) -> Child:
    """Start ``argv`` in its own session, pinned to ``cpu`` (None: not pinned)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_pre_exec(cpu),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        limit=16 * 1024 * 1024,  # the load generator's reports are single long lines
    )
    child = Child(name, proc)
    _LIVE.add(child)
    return child


def kill_all() -> None:
    """SIGKILL every child still running (their process groups); safe to call twice."""
    for child in list(_LIVE):
        if child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        _LIVE.discard(child)
