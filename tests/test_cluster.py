"""Several processes over Redis, as real processes: ``serve --workers``, ``feed`` and ``gateway``.

Every process is started in a session of its own and its whole group is
killed when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStore
from tests.redis_support import SHARED_URL, free_port, shared_prefix
from tests.test_cli import serve_and_interrupt

pytest.importorskip("cmcstream.bus.redis", reason="the feed and gateways need the Redis bus")

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
SMALL = ("--universe-size", "600", "--speed", "100")
TTL_S = 2.0
SUBSCRIBE_BTC = json.dumps(
    {
        "id": 1,
        "method": "subscribe",
        "channel": "market@crypto_latest_price",
        "params": {"crypto_ids": [1]},
    }
)


@pytest.fixture
def prefix() -> Iterator[str]:
    with shared_prefix() as unique:
        yield unique


class Output:
    """A child's standard output, read by a thread so that every wait on it is bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in self.stream:
                self._lines.put(line)
        self._lines.put(None)

    def __iter__(self) -> Iterator[str]:
        while (line := self._lines.get(timeout=60)) is not None:
            self.seen.append(line)
            yield line

    def banner(self) -> str:
        """Everything up to the "Press Ctrl-C" line (60 s at most)."""
        for line in self:
            if line.startswith("Press Ctrl-C"):
                return "".join(self.seen)
        raise AssertionError(f"exited before its banner: {''.join(self.seen)}")


@contextlib.contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A ``cmcstream`` process whose ``stdout`` is an :class:`Output`; killed with its group."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmcstream", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    proc.stdout = Output(stdout)  # type: ignore[assignment]
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def banner(proc: subprocess.Popen[str]) -> str:
    assert isinstance(proc.stdout, Output)
    return proc.stdout.banner()


def url_of(text: str) -> str:
    found = re.search(r"listening on (ws://\S+)", text)
    assert found is not None, text
    return found.group(1)


def welcomed(stack: contextlib.ExitStack, url: str, key: str) -> ClientConnection:
    ws = stack.enter_context(connect(url, additional_headers={HEADER: key}, open_timeout=5))
    assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
    return ws


def refused_with(url: str, key: str, keep: contextlib.ExitStack | None = None) -> int | None:
    """The close code of a connection the server refuses; None if it is welcomed (and then
    kept open in ``keep``, if given)."""
    with contextlib.ExitStack() as stack:
        ws = stack.enter_context(connect(url, additional_headers={HEADER: key}, open_timeout=5))
        try:
            frame = json.loads(ws.recv(timeout=5))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else -1
        assert frame["type"] == "welcome"
        if keep is not None:
            keep.enter_context(stack.pop_all())
        return None


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.05)
    return False


def pids_of(text: str) -> list[int]:
    found = re.search(r"processes: (.*)", text)
    assert found is not None, text
    return [int(pid) for pid in re.findall(r"(\d+)(?:,|$)", found.group(1))]


def test_a_keys_limit_holds_across_gateway_processes_and_a_killed_ones_slots_come_back(
    tmp_path: Path, prefix: str
) -> None:
    db = tmp_path / "k.db"
    store = KeyStore(db)
    key = store.create(plan="startup").key  # 10 connections
    store.close()
    bus = ("--bus", SHARED_URL, "--bus-prefix", prefix)
    gw = ("gateway", "--port", "0", "--db", str(db), "--lease-ttl", str(TTL_S), *bus)
    with started("feed", *bus, *SMALL) as feed, started(*gw) as one, started(*gw) as two:
        banner(feed)
        url_one, url_two = url_of(banner(one)), url_of(banner(two))
        with contextlib.ExitStack() as stack:
            opened = [welcomed(stack, url, key) for url in (url_one, url_two) for _ in range(5)]
            # Pushes flow from the feed process through Redis to the second gateway.
            watcher = opened[-1]
            watcher.send(SUBSCRIBE_BTC)
            assert json.loads(watcher.recv(timeout=5))["type"] == "ack"
            assert json.loads(watcher.recv(timeout=10))["type"] == "data"

            assert refused_with(url_one, key) == 4004
            assert refused_with(url_two, key) == 4004

            two.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            assert gone(two.pid, 5)
            again = 0
            while again < 5:
                assert time.monotonic() - killed < TTL_S + 2.0, f"{again} of 5 slots back"
                code = refused_with(url_one, key, keep=stack)
                if code is None:
                    again += 1
                else:
                    assert code == 4004
                    time.sleep(0.1)
            freed_after = time.monotonic() - killed
            # The freed slots are counted again: the limit still holds.
            assert refused_with(url_one, key) == 4004
    assert freed_after <= TTL_S + 2.0


def test_a_gateway_elsewhere_joins_a_serve_on_the_bus(tmp_path: Path, prefix: str) -> None:
    """The set-up of several machines: ``serve --bus`` on one, ``gateway --bus`` on others."""
    db = tmp_path / "k.db"
    store = KeyStore(db)
    key = store.create(plan="startup").key
    store.close()
    bus = ("--bus", SHARED_URL, "--bus-prefix", prefix)
    with (
        started("serve", "--port", "0", "--db", str(db), *bus, *SMALL) as main,
        started("gateway", "--port", "0", "--db", str(db), *bus) as other,
    ):
        url_main, url_other = url_of(banner(main)), url_of(banner(other))
        with contextlib.ExitStack() as stack:
            watcher = welcomed(stack, url_other, key)
            watcher.send(SUBSCRIBE_BTC)
            assert json.loads(watcher.recv(timeout=5))["type"] == "ack"
            assert json.loads(watcher.recv(timeout=10))["type"] == "data"
            for _ in range(9):
                welcomed(stack, url_main, key)
            assert refused_with(url_other, key) == 4004
            assert refused_with(url_main, key) == 4004


def test_workers_share_one_port_stop_on_sigint_and_leave_no_process(
    tmp_path: Path, prefix: str
) -> None:
    args = ["serve", "--workers", "2", "--port", "0", "--db", str(tmp_path / "k.db")]
    with started(*args, *SMALL, "--bus", SHARED_URL, "--bus-prefix", prefix) as proc:
        serve_and_interrupt(proc)  # reads the banner, streams, SIGINT, close 1001, exit 0
        assert isinstance(proc.stdout, Output)
        pids = pids_of("".join(proc.stdout.seen))
        assert len(pids) == 3  # the feed and two gateways
        assert all(gone(pid, 1) for pid in pids)


def test_the_children_of_a_killed_supervisor_stop_on_their_own(tmp_path: Path, prefix: str) -> None:
    args = ["serve", "--workers", "2", "--port", "0", "--db", str(tmp_path / "k.db")]
    with started(*args, *SMALL, "--bus", SHARED_URL, "--bus-prefix", prefix) as proc:
        pids = pids_of(banner(proc))
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        # Not their parent's any more: nothing reaps them but init, so poll with kill(0).
        stragglers = [pid for pid in pids if not gone(pid, 10)]
        assert stragglers == []


def test_workers_without_redis_fail_with_what_to_do(tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    args = ["serve", "--workers", "2", "--port", "0", "--db", str(tmp_path / "k.db")]
    with started(*args, "--bus", nowhere) as proc:
        assert proc.wait(20) == 1
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert f"Redis at {nowhere} does not answer" in err
    assert "--bus redis://HOST:PORT/DB" in err
    assert "Traceback" not in err


def test_plain_serve_is_still_one_process(tmp_path: Path) -> None:
    args = ["serve", "--port", "0", "--db", str(tmp_path / "k.db"), *SMALL]
    with started(*args) as proc:
        text = banner(proc)
        assert "bus:" not in text
        assert "processes:" not in text
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        if children.exists():
            assert children.read_text().split() == []
        proc.send_signal(signal.SIGINT)  # at once: the handler is in place before the banner
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr is not None else ""
