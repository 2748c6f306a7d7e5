"""Helpers for end-to-end tests over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cmcstream.server.auth import HEADER
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode

TIMEOUT = 5.0


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    # speed 100: a 5 s cadence is 50 ms of wall time.
    async with running_server(speed=100) as running:
        yield running


def dial(url: str, key: str | None, **kwargs: Any) -> Any:
    headers = {HEADER: key} if key is not None else {}
    return connect(
        url, additional_headers=headers, compression=None, open_timeout=TIMEOUT, **kwargs
    )


async def recv_json(ws: ClientConnection, wait: float = TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), wait)
    assert isinstance(raw, str)
    message = json.loads(raw)
    assert isinstance(message, dict)
    return message


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send a request and return the first non-data frame that answers it."""
    await ws.send(json.dumps(message))
    while True:
        reply = await recv_json(ws)
        if reply["type"] != "data":
            return reply


async def closed_with(ws: ClientConnection, wait: float = TIMEOUT) -> tuple[int, list[Any]]:
    """Read until the server closes; return the close code and the frames seen before it."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(wait):
            while True:
                frames.append(json.loads(await ws.recv()))
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            raise AssertionError("the server dropped the connection without a close frame") from exc
        return exc.rcvd.code, frames
    raise AssertionError("unreachable")


async def welcomed(ws: ClientConnection) -> dict[str, Any]:
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    return welcome
