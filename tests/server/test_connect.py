"""Connect-time behaviour: keys, plans, connection limits, paths (PROTOCOL.md §2, §3, §12)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cmcstream.server.keystore import KeyStatus
from cmcstream.testing.server import RunningNode
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed


async def test_welcome_comes_first(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        welcome = await welcomed(ws)
        assert list(welcome) == ["type", "ping_interval_ms", "ts"]
        assert welcome["ping_interval_ms"] == 10000
        assert isinstance(welcome["ts"], int)


@pytest.mark.parametrize(
    ("status", "plan", "code", "error"),
    [
        (KeyStatus.DISABLED, "startup", 4101, None),
        (KeyStatus.ACTIVE, "basic", 4102, None),
        (KeyStatus.ACTIVE, "hobbyist", 4102, None),
        (KeyStatus.INACTIVE, "startup", 4100, "1003"),
        (KeyStatus.EXPIRED, "startup", 4100, "1004"),
    ],
)
async def test_refused_keys(
    node: RunningNode, status: KeyStatus, plan: str, code: int, error: str | None
) -> None:
    key = node.store.create(plan=plan, status=status).key
    async with dial(node.url, key) as ws:
        got, frames = await closed_with(ws)
    assert got == code
    if error is None:
        assert frames == []  # no JSON body, and no welcome
    else:
        assert len(frames) == 1
        assert frames[0]["type"] == "error"
        assert "id" not in frames[0]
        assert frames[0]["status"]["error_code"] == error
        assert frames[0]["status"]["category"] == "AUTH"


async def test_unknown_key_is_4100_with_no_body(node: RunningNode) -> None:
    async with dial(node.url, "not-a-key") as ws:
        assert await closed_with(ws) == (4100, [])


async def test_missing_key_is_error_1002_then_4100(node: RunningNode) -> None:
    async with dial(node.url, None) as ws:
        code, frames = await closed_with(ws)
    assert code == 4100
    assert [f["status"]["error_code"] for f in frames] == ["1002"]
    assert frames[0]["status"]["error_message"] == "API key missing."


async def test_query_string_key_is_a_fallback_and_the_header_wins(node: RunningNode) -> None:
    async with dial(f"{node.url}?CMC_PRO_API_KEY={node.demo_key}", None) as ws:
        await welcomed(ws)
    async with dial(f"{node.url}?CMC_PRO_API_KEY={node.demo_key}", "bogus") as ws:
        assert await closed_with(ws) == (4100, [])
    # Other query parameters are ignored (§2).
    async with dial(f"{node.url}?crypto_ids=1", node.demo_key) as ws:
        await welcomed(ws)


async def test_eleventh_connection_is_4004(node: RunningNode) -> None:
    opened = [await dial(node.url, node.demo_key).__aenter__() for _ in range(10)]
    try:
        for ws in opened:
            await welcomed(ws)
        async with dial(node.url, node.demo_key) as extra:
            assert await closed_with(extra) == (4004, [])
        # Another key is not affected, and a freed slot can be used again.
        other = node.store.create().key
        async with dial(node.url, other) as ws:
            await welcomed(ws)
        await opened.pop().close()
        await asyncio.sleep(0.05)
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
    finally:
        for ws in opened:
            await ws.close()


def http_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def test_health_and_other_paths(node: RunningNode) -> None:
    base = f"http://127.0.0.1:{node.port}"
    status, ctype, body = await asyncio.to_thread(http_get, f"{base}/health")
    assert (status, ctype) == (200, "application/json")
    health: dict[str, Any] = json.loads(body)
    assert health["status"] == "ok"
    assert health["connections"] == 0
    assert (health["slow_readers"], health["slow_closed"]) == (0, 0)
    assert health["engine"] in ("compiled", "interpreted")
    status, _, _ = await asyncio.to_thread(http_get, f"{base}/push/token-agg-event")
    assert status == 404
    status, _, _ = await asyncio.to_thread(http_get, f"{base}/v1")
    assert status == 426  # /v1 speaks only WebSocket
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{node.port}/v2", open_timeout=5).__aenter__()
    assert info.value.response.status_code == 404


async def test_a_refused_connection_does_not_disturb_others(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        async with dial(node.url, "bad") as bad:
            await closed_with(bad)
        assert (await request(ws, {"id": 1, "method": "ping"}))["type"] == "pong"


async def test_connect_answers_frames_in_order(node: RunningNode) -> None:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        for i in range(20):
            await ws.send(json.dumps({"id": i, "method": "ping"}))
        ids = [(await recv_json(ws))["id"] for _ in range(20)]
        assert ids == list(range(20))
