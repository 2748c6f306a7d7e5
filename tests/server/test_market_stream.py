"""Live ``market@crypto_latest_price`` pushes, as a client sees them (§5.4, §8, §9.1)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.conftest import dial, recv_json, request, welcomed


async def collect(ws: Any, count: int) -> list[dict[str, Any]]:
    pushes = []
    while len(pushes) < count:
        frame = await recv_json(ws)
        assert frame["type"] == "data", frame
        pushes.append(frame)
    return pushes


async def test_pushes_have_all_fields_consistent(node: RunningNode, channels_json: Any) -> None:
    documented = channels_json["channels"]["market@crypto_latest_price"]["payload"]
    fields = [field["name"] for field in documented]
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        ack = await request(
            ws,
            {
                "id": 1,
                "method": "subscribe",
                "channel": "market@crypto_latest_price",
                "params": {"crypto_ids": [1, 1027]},
            },
        )
        assert ack["sub_count"] == 2
        pushes = await collect(ws, 6)
    seen = set()
    for push in pushes:
        assert list(push) == ["type", "channel", "params", "data", "ts"]
        assert push["channel"] == "market@crypto_latest_price"
        cid = push["params"]["crypto_ids"]
        assert isinstance(cid, int)
        seen.add(cid)
        data = push["data"]
        assert list(data) == fields
        assert data["cid"] == cid
        assert all(data[f] is not None for f in fields), data
        assert math.isclose(data["mc"], data["p"] * data["cs"], rel_tol=1e-9)
        assert data["vu"] > 0
        assert data["fdv24h"] == data["p24h"] or abs(data["fdv24h"] - data["p24h"]) < 1.0
    assert seen == {1, 1027}
    btc = next(p["data"] for p in pushes if p["params"]["crypto_ids"] == 1)
    eth = next(p["data"] for p in pushes if p["params"]["crypto_ids"] == 1027)
    assert 10_000 < btc["p"] < 1_000_000
    assert 100 < eth["p"] < 100_000
    assert btc["cs"] > 19_000_000


async def test_one_push_per_id_per_tick_and_cadence() -> None:
    # 5 s and 15 s of simulated time are 50 ms and 150 ms here.
    async with running_server(speed=100, fast_rank_max=1) as node:
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            await request(
                ws,
                {
                    "method": "subscribe",
                    "channel": "market@crypto_latest_price",
                    "params": {"crypto_ids": [1, 1027]},
                },
            )
            pushes = await collect(ws, 16)
    per_id: dict[int, list[int]] = {1: [], 1027: []}
    for push in pushes:
        per_id[push["params"]["crypto_ids"]].append(push["ts"])
    # Rank 1 is on the fast cadence; ETH (rank 2) is past fast_rank_max=1: three times slower.
    assert len(per_id[1]) >= 2 * len(per_id[1027])
    # ``ts`` is the send time: a stalled event loop shifts single pushes, so the
    # cadence shows in the typical gap rather than in every one of them.
    gaps = sorted(b - a for a, b in zip(per_id[1027], per_id[1027][1:], strict=False))
    assert gaps
    assert gaps[len(gaps) // 2] >= 120, gaps  # 15 simulated s at speed 100, in wall ms


async def test_unknown_id_is_acked_and_gets_nothing(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        ack = await request(
            ws,
            {
                "method": "subscribe",
                "channel": "market@crypto_latest_price",
                "params": {"crypto_ids": [99_999_999, 1]},
            },
        )
        assert ack["sub_count"] == 2
        pushes = await collect(ws, 5)
    assert {p["params"]["crypto_ids"] for p in pushes} == {1}


async def test_same_bytes_reach_every_subscriber(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as a, dial(node.url, node.demo_key) as b:
        for ws in (a, b):
            await welcomed(ws)
            await request(
                ws,
                {
                    "method": "subscribe",
                    "channel": "market@crypto_latest_price",
                    "params": {"crypto_ids": 1},
                },
            )
        first_a = await collect(a, 3)
        first_b = await collect(b, 3)
    by_ts_a = {p["ts"]: p for p in first_a}
    common = [p for p in first_b if p["ts"] in by_ts_a]
    assert common, "two subscribers should see the same tick"
    for push in common:
        assert push == by_ts_a[push["ts"]]


async def test_seed_and_start_make_the_stream_reproducible() -> None:
    start = 1_790_000_000_000

    async def market(seed: int) -> list[Any]:
        async with running_server(speed=1, seed=seed, start_ms=start) as node:
            assert node.origin_ms == start
            for event in node.simulator.step(node.origin_ms + 5000):
                node.engine.apply(event)
            return node.engine.tick(node.origin_ms + 5000, [1, 1027, 5426])

    first = await market(7)
    assert len(first) == 3
    assert first == await market(7)
    assert first != await market(8)


async def test_pushes_keep_flowing_while_another_client_misbehaves(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as good, dial(node.url, node.demo_key) as bad:
        await welcomed(good)
        await welcomed(bad)
        await request(
            good,
            {
                "method": "subscribe",
                "channel": "market@crypto_latest_price",
                "params": {"crypto_ids": [1]},
            },
        )
        for _ in range(50):
            await bad.send("garbage")
        await asyncio.sleep(0)
        assert len(await collect(good, 3)) == 3
        errors = [await recv_json(bad) for _ in range(50)]
        assert {e["status"]["error_code"] for e in errors} == {"2201"}
