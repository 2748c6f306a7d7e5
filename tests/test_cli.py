"""The ``cmcstream`` command line: ``keys`` in-process, ``serve`` as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cmcstream.cli import main
from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStatus, KeyStore

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def drain(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=10)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_keys_lifecycle(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    code, out = run("keys", "create", "--db", db, "--plan", "professional", "--name", "ci")
    assert code == 0
    key = out.strip()
    assert UUID.match(key), out  # only the key on stdout
    code, out = run("keys", "create", "--db", db, "--status", "inactive", "--credits", "5")
    other = out.strip()
    store = KeyStore(db)
    record = store.get(other)
    assert record is not None
    assert record.status is KeyStatus.INACTIVE
    assert record.monthly_credits == 5
    store.close()

    code, out = run("keys", "list", "--db", db)
    assert code == 0
    assert key in out
    assert other in out
    assert "professional" in out

    code, out = run("keys", "show", key, "--db", db)
    assert code == 0
    assert "status:        active" in out
    assert "3,000,000" in out

    assert run("keys", "disable", key, "--db", db)[0] == 0
    assert "disabled" in run("keys", "show", key, "--db", db)[1]
    assert run("keys", "enable", key, "--db", db)[0] == 0
    assert "status:        active" in run("keys", "show", key, "--db", db)[1]
    assert run("keys", "delete", key, "--db", db)[0] == 0
    assert key not in run("keys", "list", "--db", db)[1]


@pytest.mark.parametrize("command", ["show", "disable", "enable", "delete"])
def test_unknown_key_is_an_error(tmp_path: Path, command: str) -> None:
    code, out = run("keys", command, "nope", "--db", str(tmp_path / "k.db"))
    assert code == 1
    assert "no such key" in out


def test_empty_store_lists_no_keys(tmp_path: Path) -> None:
    assert run("keys", "list", "--db", str(tmp_path / "k.db")) == (0, "no keys\n")


def test_bad_plan_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = run("keys", "create", "--db", str(tmp_path / "k.db"), "--plan", "free")
    assert code == 2


def test_serve_prints_a_demo_key_streams_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["serve", "--port", "0", "--db", str(tmp_path / "k.db"), "--universe-size", "600"]
    with subprocess.Popen(
        [sys.executable, "-m", "cmcstream", *args, "--speed", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        serve_and_interrupt(proc)


def serve_and_interrupt(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(lines)
        url = re.search(r"listening on (ws://\S+)", banner)
        key = re.search(r"demo key: (\S+)", banner)
        assert url is not None, banner
        assert key is not None, banner
        playground = re.search(r"playground: (http://\S+)", banner)
        assert playground is not None, banner
        with urllib.request.urlopen(playground.group(1), timeout=5) as page:
            assert b"<title>cmcstream playground</title>" in page.read()
        with connect(url.group(1), additional_headers={HEADER: key.group(1)}) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
            ws.send(
                json.dumps(
                    {
                        "id": 1,
                        "method": "subscribe",
                        "channel": "market@crypto_latest_price",
                        "params": {"crypto_ids": [1]},
                    }
                )
            )
            assert json.loads(ws.recv(timeout=5))["type"] == "ack"
            assert json.loads(ws.recv(timeout=5))["type"] == "data"
            proc.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as info:
                drain(ws)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_key_is_created_once_and_found_again(tmp_path: Path) -> None:
    from cmcstream.cli import _demo_key

    store = KeyStore(tmp_path / "k.db")
    try:
        first = _demo_key(store)
        assert first is not None
        assert first.plan == "startup"
        again = _demo_key(store)
        assert again is not None
        assert again.key == first.key
        store.set_status(first.key, "disabled")
        assert _demo_key(store) is None
        assert store.count() == 1
    finally:
        store.close()


def test_world_rejects_a_chain_it_does_not_simulate() -> None:
    result = CliRunner().invoke(main, ["world", "--chain", "99"])
    assert result.exit_code == 2
    assert "99 is not a simulated chain" in result.output
    assert "1 (Ethereum), 14 (BSC), 16 (Solana), 199 (Base)" in result.output


def test_world_json_marks_the_busiest_token_of_each_chain() -> None:
    from cmcstream.sources.simulator.dex_world import DexWorld

    code, out = run("world", "--seed", "5", "--json")
    assert code == 0
    busiest = {(t["platform_id"], t["address"]) for t in json.loads(out)["tokens"] if t["busiest"]}
    built = DexWorld.build(5)
    assert busiest == {(c, built.busiest_token(c).address) for c in built.chains}


def test_world_text_has_column_headers() -> None:
    code, out = run("world", "--chain", "14")
    assert code == 0
    lines = out.splitlines()
    for section, header in (
        ("TOKENS", "PID  SYMBOL     ADDRESS"),
        ("POOLS", "PID  PAIR             DEX              POOL ADDRESS"),
        ("TAGGED WALLETS", "PID  TAGS                     WALLET ADDRESS"),
    ):
        at = next(i for i, line in enumerate(lines) if line.startswith(section))
        assert lines[at + 1].strip() == header
    rows = [line.split() for line in lines if re.search(r"0x[0-9a-f]{40}$", line)]
    assert rows
    assert all(row[0] == "14" or row[:2] == ["*", "14"] for row in rows)


def test_market_lists_ranks_ids_symbols_and_names() -> None:
    code, out = run("market", "--limit", "3")
    assert code == 0
    assert out.splitlines()[1].split() == ["RANK", "ID", "SYMBOL", "NAME"]
    assert [line.split(maxsplit=3) for line in out.splitlines()[2:]] == [
        ["1", "1", "BTC", "Bitcoin"],
        ["2", "1027", "ETH", "Ethereum"],
        ["3", "825", "USDT", "Tether USDt"],
    ]


def test_market_json_follows_the_seed_and_size_serve_takes() -> None:
    from cmcstream.sources.simulator.universe import Universe

    code, out = run("market", "--seed", "4", "--universe-size", "300", "--json")
    assert code == 0
    assets = json.loads(out)["assets"]
    expected = Universe.load(300, seed=4)
    assert len(assets) == 300
    assert [(a["rank"], a["id"], a["symbol"], a["name"]) for a in assets] == [
        (e.rank, e.cid, e.symbol, e.name) for e in expected
    ]
    assert assets[-1]["generated"]
    assert not assets[0]["generated"]
    assert run("market", "--universe-size", "-1")[0] == 2
