"""The admin HTTP API end to end: a server with it on port 0, the ``keys`` commands
against it (``--server``), its OpenAPI document, and the token check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from cmcstream.cli import _config, main
from cmcstream.server.store import KeyStatus, key_id
from cmcstream.testing.server import RunningNode, running_server

TOKEN = "s3cret-admin-token"


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    async with running_server(speed=100, admin_port=0, admin_token=TOKEN) as running:
        yield running


def admin_url(node: RunningNode) -> str:
    assert node.admin is not None
    return node.admin.url


async def keys(node: RunningNode, *args: str, token: str = TOKEN) -> tuple[int, str]:
    """``cmcstream keys ARGS --server …``, in a thread: the server runs on this loop."""
    argv = ["keys", *args, "--server", admin_url(node), "--admin-token", token]
    result = await asyncio.to_thread(CliRunner().invoke, main, argv)
    return result.exit_code, result.output


async def get(node: RunningNode, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=admin_url(node), timeout=5) as client:
        return await client.get(path, headers=headers)


async def test_the_keys_commands_work_against_a_remote_server(node: RunningNode) -> None:
    code, out = await keys(node, "create", "--plan", "enterprise", "--name", "remote")
    assert code == 0, out
    secret = out.strip()
    record = node.store.get(secret)
    assert record is not None
    assert record.plan == "enterprise"
    kid = key_id(secret)

    code, out = await keys(node, "list")
    assert code == 0, out
    assert kid in out
    assert key_id(node.demo_key) in out
    assert secret not in out
    assert node.demo_key not in out
    assert "remote" in out
    assert "enterprise" in out

    for name in (secret, kid):  # the key itself, or its id
        code, out = await keys(node, "show", name)
        assert code == 0, out
        assert f"key:           {kid}" in out
        assert "plan:          enterprise" in out

    code, out = await keys(node, "disable", kid)
    assert (code, out.strip()) == (0, f"{kid} disabled")
    assert node.store.get(secret).status is KeyStatus.DISABLED  # type: ignore[union-attr]
    code, out = await keys(node, "enable", secret)
    assert code == 0, out
    assert node.store.get(secret).status is KeyStatus.ACTIVE  # type: ignore[union-attr]
    code, out = await keys(node, "delete", kid)
    assert (code, out.strip()) == (0, f"{kid} deleted")
    assert node.store.get(secret) is None
    code, out = await keys(node, "show", kid)
    assert code == 1
    assert f"no such key: {kid}" in out


async def test_usage_by_month_and_the_openapi_document(node: RunningNode) -> None:
    kid = key_id(node.demo_key)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await get(node, f"/keys/{kid}/usage?month=2026-01", **auth)
    assert response.status_code == 200
    assert response.json() == {"month": "2026-01", "credits": 0.0, "milli": 0, "messages": 0}
    assert (await get(node, f"/keys/{kid}/usage?month=2026-13", **auth)).status_code == 422
    assert (await get(node, "/keys/0123456789abcdef", **auth)).status_code == 404

    response = await get(node, "/openapi.json", **auth)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "cmcstream admin API"
    paths = document["paths"]
    assert set(paths["/keys"]) == {"get", "post"}
    assert set(paths["/keys/{kid}"]) == {"get", "delete"}
    assert {"/keys/{kid}/enable", "/keys/{kid}/disable", "/keys/{kid}/usage"} <= set(paths)
    assert "bearer" in json.dumps(document["components"]["securitySchemes"]).lower()
    assert "key" not in document["components"]["schemas"]["KeyOut"]["properties"]
    assert "key" in document["components"]["schemas"]["KeyCreated"]["properties"]


async def test_a_missing_or_wrong_token_is_401(node: RunningNode) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        response = await get(node, "/keys", **headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
    code, out = await keys(node, "list", token="wrong")
    assert code == 1
    assert "refused the token" in out


def test_the_admin_api_needs_a_token() -> None:
    with pytest.raises(click.UsageError, match="needs a token"):
        _config({"admin_port": 0, "admin_token": None})
    result = CliRunner().invoke(
        main, ["keys", "list", "--server", "http://127.0.0.1:9"], env={"CMCSTREAM_ADMIN_TOKEN": ""}
    )
    assert result.exit_code == 2
    assert "--admin-token" in result.output
