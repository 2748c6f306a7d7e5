"""A recorded exchange on 127.0.0.1: REST answers and WebSocket frames, replayed verbatim.

One port serves both: a plain HTTP GET gets the recorded REST body for its
path and query (``answer``), a WebSocket upgrade gets the frames the caller
sends with :meth:`RecordedVenue.send`, exactly as given. A ccxt client is
pointed at it by overriding its URLs (``--exchange-url``), so the tests and
the benchmark run ccxt's own parsing on real exchange traffic with no network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["Answer", "RecordedVenue", "Reply"]

Answer = Callable[[str, Mapping[str, str]], bytes | None]
"""(path, query) → the recorded body, or ``None`` for a 404."""

Reply = Callable[[str], str | None]
"""A client's WebSocket message → the venue's answer (a pong to a ping), or ``None``."""


class RecordedVenue:
    """An exchange's REST and WebSocket endpoints, replaying what it is given."""

    def __init__(self, answer: Answer, reply: Reply | None = None) -> None:
        self._answer = answer
        self._reply = reply
        self._server: Server | None = None
        self._clients: set[ServerConnection] = set()
        self._subscribed = asyncio.Condition()
        self.requests: list[str] = []  # REST paths asked for, in order
        self.subscriptions: list[str] = []  # what clients sent that got no reply

    async def start(self) -> None:
        self._server = await serve(
            self._session, "127.0.0.1", 0, process_request=self._rest, ping_interval=None
        )

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def wait_subscribed(self, count: int = 1) -> None:
        """Until ``count`` subscription messages came in (bound it with ``asyncio.timeout``)."""
        async with self._subscribed:
            await self._subscribed.wait_for(lambda: len(self.subscriptions) >= count)

    async def send(self, frame: str | bytes) -> int:
        """``frame`` to every connected client, verbatim; how many got it."""
        sent = 0
        for ws in list(self._clients):
            with contextlib.suppress(Exception):
                await ws.send(frame)
                sent += 1
        return sent

    async def drop_clients(self) -> None:
        """Close every WebSocket, as a venue that goes away does."""
        for ws in list(self._clients):
            await ws.close()

    # -- the two halves ----------------------------------------------------------------------

    def _rest(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        self.requests.append(url.path)
        body = self._answer(url.path, dict(parse_qsl(url.query)))
        status = HTTPStatus.OK if body is not None else HTTPStatus.NOT_FOUND
        payload = body if body is not None else b'{"error":["EGeneral:Not found"]}'
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return Response(status.value, status.phrase, headers, payload)

    async def _session(self, ws: ServerConnection) -> None:
        self._clients.add(ws)
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                answer = self._reply(text) if self._reply is not None else None
                if answer is not None:
                    await ws.send(answer)
                    continue
                async with self._subscribed:
                    self.subscriptions.append(text)
                    self._subscribed.notify_all()
        except Exception:
            pass  # a client that drops mid-message is the same as one that leaves
        finally:
            self._clients.discard(ws)
