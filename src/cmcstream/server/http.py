"""Plain HTTP on the WebSocket port: ``/health``, ``/metrics``, the playground; 404 for the rest.

PROTOCOL.md §1 and Q14: the protocol is served on ``/v1`` only; other paths
are answered before any upgrade.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["PATH", "make_process_request", "response"]

PATH = "/v1"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def response(
    status: http.HTTPStatus, body: bytes, content_type: str, *headers: tuple[str, str]
) -> Response:
    """A whole plain HTTP answer; the connection closes after it."""
    fields = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *headers,
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, fields, body)


def make_process_request(
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes] | None = None,
    playground: Callable[[str], Response | Awaitable[Response] | None] | None = None,
) -> Callable[[ServerConnection, Request], Response | Awaitable[Response] | None]:
    """A websockets ``process_request`` hook that routes plain HTTP requests.

    Args:
        health: returns the JSON body of ``GET /health``.
        metrics: returns the Prometheus text of ``GET /metrics``.
        playground: answers the playground's paths (``None`` for any other).
    """

    def process_request(
        connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        path = urlsplit(request.path).path
        if path == PATH:
            return None  # the WebSocket handshake proceeds (426 if it is not one)
        if path == "/health":
            body = msgspec.json.encode(health())
            return response(http.HTTPStatus.OK, body, "application/json")
        if path == "/metrics" and metrics is not None:
            return response(http.HTTPStatus.OK, metrics(), METRICS_CONTENT_TYPE)
        if playground is not None and (answer := playground(path)) is not None:
            return answer
        return response(http.HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain; charset=utf-8")

    return process_request
