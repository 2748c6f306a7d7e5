"""``cmcstream devchain`` end to end, and the ``serve --source evm`` options."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmcstream.cli import main
from tests.server.conftest import dial, recv_json, request, welcomed


def test_serve_from_a_chain_needs_its_rpc_url() -> None:
    result = CliRunner().invoke(main, ["serve", "--source", "evm"])
    assert result.exit_code == 2
    assert "--source evm needs --rpc" in result.output


@pytest.fixture
def devchain(chain_tools: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``cmcstream devchain`` on a free port, output to a file; stopped (and waited for) after."""
    log = tmp_path / "devchain.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cmcstream", "devchain", "--port", "0", "--rate", "20",
             "--db", str(tmp_path / "keys.db")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "CMCSTREAM_CHAIN_DIR": str(chain_tools)},
            start_new_session=True,  # so a failed test can end it with its anvil
        )  # fmt: skip
    try:
        yield process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def stop(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"devchain did not stop: {log.read_text()[-3000:]}") from None


async def test_devchain_serves_the_trades_of_its_chain(
    devchain: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log = devchain
    deadline = time.monotonic() + 60
    while not re.search(r"demo key: (\S+)", text := log.read_text()):
        assert process.poll() is None, text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.05)
    found = {
        name: re.search(pattern, text)
        for name, pattern in (
            ("url", r"listening on (\S+)"),
            ("key", r"demo key: (\S+)"),
            ("pepe", r"token PEPE\s+(\S+)"),
            ("anvil", r"anvil on (\S+)"),
        )
    }
    got = {name: m.group(1) for name, m in found.items() if m is not None}
    assert set(got) == set(found), text
    async with dial(got["url"], got["key"]) as ws:
        await welcomed(ws)
        params = {"platform_id": 1, "address": [got["pepe"]]}
        ack = await request(
            ws, {"id": 1, "method": "subscribe", "channel": "onchain@transaction", "params": params}
        )
        assert ack["type"] == "ack", ack
        push = await recv_json(ws, wait=20)
    assert push["channel"] == "onchain@transaction"
    assert got["pepe"] in (push["data"]["t0a"], push["data"]["t1a"])
    assert re.fullmatch(r"0x[0-9a-f]{64}", push["data"]["tx"])
    assert await asyncio.to_thread(stop, process, log) == 0, log.read_text()
    # anvil went with it: nothing listens on its port any more.
    port = int(got["anvil"].rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
