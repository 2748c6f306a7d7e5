"""``cmcstream tail`` and ``cmcstream record`` against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from rich.cells import cell_len
from rich.console import Console

from cmcstream.cli import main
from cmcstream.console.subscriptions import Sub
from cmcstream.console.tail import tail
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.universe import GENERATED_ID_BASE, Universe
from cmcstream.testing import running_server

MARKET = "market@crypto_latest_price"
SEED = 3
WORLD = DexWorld.build(SEED)
TOKEN = WORLD.busiest_token(14)
POOL = WORLD.pools_of(14, TOKEN.address)[0]


def invoke(*args: str, key: str | None = None) -> Result:
    env = {"CMC_PRO_API_KEY": key} if key else {"CMC_PRO_API_KEY": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


async def test_tail_json_prints_one_push_per_line() -> None:
    async with running_server(speed=100) as node:
        result = await asyncio.to_thread(
            invoke,
            "tail",
            MARKET,
            "--ids",
            "1,1027",
            "--url",
            node.url,
            "--json",
            "--count",
            "4",
            key=node.demo_key,
        )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 4
    assert {line["params"]["crypto_ids"] for line in lines} == {1, 1027}
    assert all(line["channel"] == MARKET and line["data"]["p"] > 0 for line in lines)


async def test_tail_draws_a_table_with_a_row_per_subscription() -> None:
    async with running_server(speed=100) as node:
        result = await asyncio.to_thread(
            invoke,
            "tail",
            MARKET,
            "--ids",
            "1",
            "--ids",
            "1027",
            "--url",
            node.url,
            "--key",
            node.demo_key,
            "--duration",
            "1",
        )
    assert result.exit_code == 0, result.output
    assert "subject" in result.output
    rows = [line.split() for line in result.output.splitlines() if "p=" in line]
    assert sorted(row[1] for row in rows) == ["BTC", "ETH"]


async def test_tail_explains_what_is_missing() -> None:
    async with running_server() as node:
        url = node.url
        no_key = await asyncio.to_thread(invoke, "tail", MARKET, "--ids", "1", "--url", node.url)
        no_ids = await asyncio.to_thread(
            invoke, "tail", MARKET, "--url", node.url, key=node.demo_key
        )
        no_address = await asyncio.to_thread(
            invoke,
            "tail",
            "onchain@kline",
            "--platform",
            "14",
            "--url",
            node.url,
            key=node.demo_key,
        )
        unknown = await asyncio.to_thread(
            invoke, "tail", "market@kline", "--ids", "1", "--url", node.url, key=node.demo_key
        )
        refused = await asyncio.to_thread(
            invoke, "tail", MARKET, "--ids", "1", "--url", node.url, key="wrong"
        )
        rejected = await asyncio.to_thread(
            invoke,
            "tail",
            "onchain@kline",
            "--platform",
            "14",
            "--address",
            "0x12",
            "--url",
            node.url,
            key=node.demo_key,
        )
    assert no_key.exit_code == 2
    assert "CMC_PRO_API_KEY" in no_key.output
    assert no_ids.exit_code == 2
    assert "needs --ids" in no_ids.output
    assert "needs --address" in no_address.output
    assert "unknown channel" in unknown.output
    assert refused.exit_code == 1
    assert f"{url} refused the key: InvalidKey" in refused.output
    assert rejected.exit_code == 1
    assert "refused onchain@kline" in rejected.output
    assert "InvalidParams" in rejected.output
    assert "Traceback" not in refused.output + rejected.output


async def test_record_writes_every_frame_with_its_receive_time(tmp_path: Path) -> None:
    out = tmp_path / "market.jsonl"
    async with running_server(speed=100) as node:
        result = await asyncio.to_thread(
            invoke,
            "record",
            str(out),
            MARKET,
            "--ids",
            "1,1027",
            "--url",
            node.url,
            "--duration",
            "1",
            key=node.demo_key,
        )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    frames = [line["frame"] for line in lines if "frame" in line]
    assert frames[0]["type"] == "welcome"
    assert frames[1]["type"] == "ack"
    assert frames[1]["sub_count"] == 2
    assert sum(f["type"] == "data" for f in frames) >= 4
    assert all(line["recv"] > 1e9 and line["conn"] == 0 for line in lines)
    assert any(line.get("state") == "open" for line in lines)
    assert f"{len(frames)} frames written" in result.output


def every_channel() -> list[str]:
    """One --sub per channel, for the busiest BSC token of the test seed (the
    recording the quant needed eleven processes for)."""
    token = f"platform_id=14,address={TOKEN.address}"
    wallet = WORLD.tagged(14, "dev")[0].address
    return [
        f"{channel}:{token}"
        for channel in (
            "onchain@token_agg_event",
            "onchain@transaction",
            "onchain@liquidity_event",
            "onchain@token_metric",
            "onchain@holders_metrics",
        )
    ] + [
        f"onchain@kline:{token},interval=1s",
        f"onchain@unique_trader:{token},interval=1s",
        f"onchain@pool_metric:platform_id=14,pool_address={POOL.address}",
        f"onchain@holder_wallet_update:platform_id=14,wallet={wallet}",
        f"{MARKET}:ids=1,1027",
    ]


def frames_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_record_takes_every_channel_in_one_command_over_one_connection(
    tmp_path: Path,
) -> None:
    out = tmp_path / "all.jsonl"
    subs = every_channel()
    async with running_server(speed=100, seed=SEED) as node:
        args = [arg for sub in subs for arg in ("--sub", sub)]
        result = await asyncio.to_thread(
            invoke,
            "record",
            str(out),
            *args,
            "--url",
            node.url,
            "--duration",
            "1.5",
            key=node.demo_key,
        )
    assert result.exit_code == 0, result.output
    lines = frames_of(out)
    frames = [line["frame"] for line in lines if "frame" in line]
    assert sum(f["type"] == "welcome" for f in frames) == 1
    assert all(line["conn"] == 0 for line in lines)
    acks = [f for f in frames if f["type"] == "ack"]
    assert [a["sub_count"] for a in acks] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    pushed = Counter(f["channel"] for f in frames if f["type"] == "data")
    steady = {s.partition(":")[0] for s in subs} - {
        "onchain@liquidity_event",  # rare events: may not come within the recording
        "onchain@holder_wallet_update",
    }
    assert steady <= set(pushed), pushed


async def test_subscriptions_beyond_one_connection_share_one_stream(tmp_path: Path) -> None:
    """150 ids need two connections of 100: one command opens both."""
    ids = [a.cid for a in Universe.load(600, seed=0)][:150]
    subs_file = tmp_path / "subs.json"
    subs_file.write_text(json.dumps([{"channel": MARKET, "params": {"crypto_ids": ids}}]))
    out = tmp_path / "market.jsonl"
    async with running_server(speed=100) as node:
        result = await asyncio.to_thread(
            invoke,
            "record",
            str(out),
            "--subs-file",
            str(subs_file),
            "--url",
            node.url,
            "--duration",
            "1",
            key=node.demo_key,
        )
    assert result.exit_code == 0, result.output
    lines = frames_of(out)
    welcomes = [line["conn"] for line in lines if line.get("frame", {}).get("type") == "welcome"]
    assert welcomes == [0, 1]
    acked = [
        line["frame"]["sub_count"]
        for line in lines
        if "frame" in line and line["frame"]["type"] == "ack"
    ]
    assert sorted(acked) == [50, 100]
    seen = {
        line["frame"]["params"]["crypto_ids"]
        for line in lines
        if line.get("frame", {}).get("type") == "data"
    }
    assert len(seen) > 100


async def test_subs_file_of_json_lines_and_sub_strings(tmp_path: Path) -> None:
    subs_file = tmp_path / "subs.jsonl"
    subs_file.write_text(
        "# the market, then one token\n"
        '{"method": "subscribe", "channel": "market@crypto_latest_price", '
        '"params": {"crypto_ids": [1]}}\n'
        "\n"
        f"onchain@kline:platform_id=14,address={TOKEN.address},interval=1s\n"
    )
    async with running_server(speed=100, seed=SEED) as node:
        result = await asyncio.to_thread(
            invoke,
            "tail",
            "--subs-file",
            str(subs_file),
            "--url",
            node.url,
            "--json",
            "--duration",
            "1",
            key=node.demo_key,
        )
    assert result.exit_code == 0, result.output
    pushes = [json.loads(line) for line in result.output.splitlines()]
    assert {p["channel"] for p in pushes} == {MARKET, "onchain@kline"}
    assert {p["params"].get("interval") for p in pushes} == {None, "1s"}


async def test_bad_subscriptions_are_usage_errors_naming_the_culprit(tmp_path: Path) -> None:
    bad_file = tmp_path / "subs.jsonl"
    bad_file.write_text(f"{MARKET}:ids=1\nonchain@kline:platform_id=14,colour=red\n")
    async with running_server() as node:
        unknown_key = await asyncio.to_thread(
            invoke, "tail", "--sub", f"{MARKET}:crypto=1", "--url", node.url, key=node.demo_key
        )
        in_file = await asyncio.to_thread(
            invoke, "tail", "--subs-file", str(bad_file), "--url", node.url, key=node.demo_key
        )
        nothing = await asyncio.to_thread(invoke, "tail", "--url", node.url, key=node.demo_key)
    assert unknown_key.exit_code == 2
    assert f"--sub '{MARKET}:crypto=1': {MARKET} takes no 'crypto'" in unknown_key.output
    assert in_file.exit_code == 2
    assert f"{bad_file}:2: onchain@kline takes no 'colour'" in in_file.output
    assert nothing.exit_code == 2
    assert "nothing to subscribe to" in nothing.output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_endpoint_is_named() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/v1"
    for command in (["tail", MARKET, "--ids", "1"], ["record", os.devnull, MARKET, "--ids", "1"]):
        result = invoke(*command, "--url", url, key="any")
        assert result.exit_code == 1, result.output
        assert f"cannot connect to {url}: " in result.output
        assert "Traceback" not in result.output


async def test_tail_table_names_what_it_shows_in_80_columns() -> None:
    generated = Universe.load(600, seed=SEED).get(GENERATED_ID_BASE + 5)
    assert generated is not None
    subs = [
        Sub(MARKET, {"crypto_ids": [1, generated.cid]}),
        Sub("onchain@transaction", {"platform_id": 14, "address": [TOKEN.address]}),
        Sub("onchain@kline", {"platform_id": 14, "address": [TOKEN.address], "interval": "1s"}),
        Sub("onchain@pool_metric", {"platform_id": 14, "pool_address": [POOL.address]}),
        Sub("onchain@holders_metrics", {"platform_id": 14, "address": [TOKEN.address]}),
    ]
    screen = io.StringIO()
    console = Console(file=screen, width=80, force_terminal=False, color_system=None)
    async with running_server(speed=100, seed=SEED) as node:
        seen = await tail(
            node.url,
            node.demo_key,
            subs,
            as_json=False,
            count=None,
            duration=1.5,
            console=console,
        )
    assert seen > 0
    lines = screen.getvalue().splitlines()
    assert max(cell_len(line) for line in lines) <= 80, screen.getvalue()
    table = screen.getvalue()
    pair = f"{WORLD.token(14, POOL.token0).symbol}/{WORLD.token(14, POOL.token1).symbol}"
    for channel, subject in (
        ("price", "BTC"),
        ("price", generated.symbol),
        ("transaction", TOKEN.symbol),
        ("kline", f"{TOKEN.symbol} 1s"),
        ("pool_metric", pair),
        ("holders", TOKEN.symbol),
    ):
        assert re.search(
            rf"^\s*{channel}\s+{re.escape(subject)}\s+\d+\s+\d\d:\d\d:\d\d ", table, re.MULTILINE
        ), (channel, subject, table)
    assert TOKEN.address not in table


@contextlib.asynccontextmanager
async def cli_process(
    *args: str, key: str, sigint: Any = signal.SIG_DFL
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``cmcstream ARGS`` as a child process, with SIGINT as given whatever this
    process inherited (a background shell starts everything with it ignored);
    killed on the way out if it is still running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cmcstream",
        *args,
        env={**os.environ, "CMC_PRO_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_ctrl_c_ends_tail_cleanly() -> None:
    async with (
        running_server(speed=100) as node,
        cli_process(
            "tail", MARKET, "--ids", "1", "--url", node.url, "--json", key=node.demo_key
        ) as proc,
    ):
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert json.loads(first)["channel"] == MARKET
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    assert b"Traceback" not in err


async def test_sigterm_ends_a_background_record_cleanly(tmp_path: Path) -> None:
    """Started with SIGINT ignored, as a background job is: SIGTERM still ends the
    recording in order, with every frame it counted on disk."""
    out = tmp_path / "bg.jsonl"
    async with (
        running_server(speed=100) as node,
        cli_process(
            "record",
            str(out),
            MARKET,
            "--ids",
            "1",
            "--url",
            node.url,
            key=node.demo_key,
            sigint=signal.SIG_IGN,
        ) as proc,
    ):
        for _ in range(150):
            if out.exists() and '"type":"data"' in out.read_text():
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    frames = [line for line in frames_of(out) if "frame" in line]
    assert f"{len(frames)} frames written to {out}".encode() in err
    assert b"Traceback" not in err
