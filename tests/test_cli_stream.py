"""``cmcstream tail`` and ``cmcstream record`` against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from cmcstream.cli import main
from cmcstream.testing import running_server

MARKET = "market@crypto_latest_price"


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
    assert "subscription" in result.output
    assert "pushes" in result.output
    rows = [line for line in result.output.splitlines() if "p=" in line]
    assert any(line.split("│")[1].strip() == "1027" for line in rows)


async def test_tail_explains_what_is_missing() -> None:
    async with running_server() as node:
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
    assert "InvalidKey" in refused.output
    assert rejected.exit_code == 1
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


async def test_ctrl_c_ends_tail_cleanly() -> None:
    async with running_server(speed=100) as node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cmcstream",
            "tail",
            MARKET,
            "--ids",
            "1",
            "--url",
            node.url,
            "--json",
            env={**os.environ, "CMC_PRO_API_KEY": node.demo_key},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert json.loads(first)["channel"] == MARKET
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    assert b"Traceback" not in err
