"""Replay of a recording: what is read, its pacing, and the gateway serving it as any feed."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from cmcstream.bus.base import InterestHandler
from cmcstream.clock import ManualClock
from cmcstream.config import ServerConfig
from cmcstream.feed.replay import Replay, read_recording
from cmcstream.protocol.channels import ChannelRegistry
from tests.conftest import load_example, spec_dir
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed

CHANNEL = "market@crypto_latest_price"
T0 = 1_796_388_413.0


def push(cid: int, price: float, ts: int = 1_796_388_413_000) -> dict[str, Any]:
    data = {"cid": cid, "p": price, "vu": 1.5, "mc": 2.25, "cs": 10, "p24h": 0.1}
    return {
        "type": "data",
        "channel": CHANNEL,
        "params": {"crypto_ids": cid},
        "data": data,
        "ts": ts,
    }


def recording(path: Path, offsets: list[tuple[float, int, float]]) -> Path:
    """A file as `cmcstream record` writes it, with the pushes at the given offsets."""
    lines = [
        {"recv": T0, "conn": 0, "frame": {"type": "welcome", "ping_interval_ms": 10000, "ts": 1}},
        {"recv": T0, "conn": 0, "state": "open", "reason": "connected"},
        {"recv": T0, "conn": 0, "frame": {"type": "ack", "id": 1, "code": 0, "msg": "ok"}},
    ]
    lines += [{"recv": T0 + at, "conn": 0, "frame": push(cid, p)} for at, cid, p in offsets]
    text = "\n".join(json.dumps(line) for line in lines)
    # What else a file may hold: a frame that was not JSON, a torn last line.
    text += '\n{"recv": 1.0, "conn": 0, "text": "not json"}\n\n{"recv": 2.0, "fra'
    path.write_text(text + "\n")
    return path


class Bus:
    """Collects what is published; interest is told by hand."""

    def __init__(self, expect: int) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.watch: InterestHandler | None = None
        self.flushes = 0
        self.expect = expect
        self.enough = asyncio.Event()

    def set_interest(self, on_watch: InterestHandler, on_unwatch: InterestHandler) -> None:
        self.watch = on_watch

    def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload)))
        if len(self.published) >= self.expect:
            self.enough.set()

    def flush(self) -> None:
        self.flushes += 1


def test_only_the_pushes_are_read_with_their_payload_verbatim(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = recording(tmp_path / "r.jsonl", [(0.0, 1, 81146.42433896479), (0.5, 1027, 2458.5)])
    with caplog.at_level(logging.WARNING):
        pushes = list(read_recording(path, ChannelRegistry()))
    assert [(p.recv - T0, p.topic) for p in pushes] == [
        (0.0, f"{CHANNEL}|1"),
        (0.5, f"{CHANNEL}|1027"),
    ]
    assert json.loads(bytes(pushes[0].payload))["p"] == 81146.42433896479
    assert b"81146.42433896479" in bytes(pushes[0].payload)
    assert "not a recorded frame" in caplog.text  # the torn line, named


async def test_pushes_keep_their_order_and_spacing_over_speed_restamped_with_wall_time(
    tmp_path: Path,
) -> None:
    path = recording(
        tmp_path / "r.jsonl", [(0.0, 1, 1.0), (0.0, 1027, 2.0), (1.0, 1, 1.5), (3.0, 1, 2.5)]
    )
    clock = ManualClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(round(seconds * 1000))

    bus = Bus(expect=3)
    replay = Replay(path, bus, speed=2.0, wall=clock, sleep=sleep)
    await replay.start()
    try:
        start = clock.now_ms()
        assert bus.watch is not None
        bus.watch(f"{CHANNEL}|1")  # 1027 is watched by nobody
        await asyncio.wait_for(bus.enough.wait(), 2)
    finally:
        await replay.stop()
    assert slept == [0.5, 1.0]  # recorded gaps of 1 s and 2 s, at twice the speed
    assert [(t, m["data"]["p"], m["ts"] - start) for t, m in bus.published] == [
        (f"{CHANNEL}|1", 1.0, 0),
        (f"{CHANNEL}|1", 1.5, 500),
        (f"{CHANNEL}|1", 2.5, 1500),
    ]
    assert bus.published[0][1]["params"] == {"crypto_ids": 1}
    assert replay.replayed == 4
    assert replay.publisher.published == 3
    assert replay.health()["finished"] is True


async def test_with_loop_the_file_starts_over(tmp_path: Path) -> None:
    path = recording(tmp_path / "r.jsonl", [(0.0, 1, 1.0), (0.2, 1, 2.0)])
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.advance(round(seconds * 1000))
        await asyncio.sleep(0)

    bus = Bus(expect=6)
    replay = Replay(path, bus, loop=True, wall=clock, sleep=sleep)
    await replay.start()
    try:
        assert bus.watch is not None
        bus.watch(f"{CHANNEL}|1")
        await asyncio.wait_for(bus.enough.wait(), 2)
    finally:
        await replay.stop()
    prices = [m["data"]["p"] for _, m in bus.published]
    assert prices[:6] == [1.0, 2.0] * 3
    assert replay.passes >= 2
    assert replay.finished is False


# -- through the gateway, over real sockets ------------------------------------------------------


@pytest.fixture
def many(tmp_path: Path) -> Path:
    # Ten rounds of both ids, 20 ms apart.
    offsets = [(0.02 * n, cid, float(n)) for n in range(10) for cid in (1, 1027)]
    return recording(tmp_path / "many.jsonl", offsets)


def replaying(path: Path) -> Any:
    from cmcstream.testing import running_server

    def build(config: ServerConfig, bus: Any) -> Replay:
        return Replay(path, bus)

    return running_server(feed=build)


async def test_the_gateway_keys_limits_and_credits_apply(many: Path) -> None:
    async with replaying(many) as node:
        async with dial(node.url, "not-a-key") as ws:
            assert await closed_with(ws) == (4100, [])
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            too_many = await request(
                ws,
                {
                    "method": "subscribe",
                    "id": 1,
                    "channel": CHANNEL,
                    "params": {"crypto_ids": list(range(1, 102))},
                },
            )
            assert too_many["type"] == "error"
            assert too_many["status"]["error_code"] == "2303"
            ack = await request(
                ws,
                {
                    "method": "subscribe",
                    "id": 2,
                    "channel": CHANNEL,
                    "params": {"crypto_ids": [1, 1027]},
                },
            )
            assert ack["type"] == "ack"
            assert ack["sub_count"] == 2
            got = [await recv_json(ws) for _ in range(20)]
        assert [(m["params"]["crypto_ids"], m["data"]["p"]) for m in got] == [
            (cid, float(n)) for n in range(10) for cid in (1, 1027)
        ]
        assert all(m["type"] == "data" and m["data"]["cs"] == 10 for m in got)
        health = node.health()
        assert health["source"] == "replay"
        assert health["replayed"] == 20
        assert health["credits_charged"] == pytest.approx(0.2)  # 0.1 per subscription


def test_every_channel_is_read_by_its_topic(tmp_path: Path) -> None:
    names = sorted(p.name for p in (spec_dir() / "examples").glob("data_*.json"))
    frames = [load_example(name) for name in names]
    lines = [{"recv": T0 + n, "conn": 0, "frame": frame} for n, frame in enumerate(frames)]
    path = tmp_path / "every.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    pushes = list(read_recording(path, ChannelRegistry()))
    assert len(pushes) == len(frames)
    assert {f["channel"] for f in frames} == {spec.name for spec in ChannelRegistry()}
    for push, frame in zip(pushes, frames, strict=True):
        values = "|".join(map(str, frame["params"].values()))
        assert push.topic == f"{frame['channel']}|{values}"
        assert json.loads(bytes(push.payload)) == frame["data"]
