"""One client connection: read frames, ask the session, carry out the effects."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from cmcstream.clock import Clock
from cmcstream.config import ServerConfig
from cmcstream.protocol import codec
from cmcstream.protocol.codes import CLOSE_CODES, CloseCode, ErrorCode
from cmcstream.protocol.messages import Error, ServerMessage
from cmcstream.protocol.session import Reply, Session, Subscribe, Unsubscribe, error_message
from cmcstream.server.frames import text_frame
from cmcstream.server.hub import Hub
from cmcstream.server.keystore import KeyRecord
from cmcstream.server.store import key_id
from cmcstream.server.transport import ActivityConnection
from cmcstream.server.writer import FlushScheduler, Outbox, PushMeter

__all__ = ["Connection", "Host"]

logger = logging.getLogger(__name__)


class Host(Protocol):
    """What a connection needs of the gateway that holds it."""

    config: ServerConfig
    hub: Hub
    scheduler: FlushScheduler
    wall: Clock
    slow_closed: int
    errors: collections.Counter[str]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class Connection:
    """An admitted connection of one API key.

    The recv loop is the connection's only task; pushes reach it through its
    :class:`Outbox` without waking it.
    """

    def __init__(
        self,
        host: Host,
        ws: ActivityConnection,
        record: KeyRecord,
        session: Session,
        meter: PushMeter | None = None,
    ) -> None:
        self.host = host
        self.ws = ws
        self.record = record
        self.session = session
        self.outbox = Outbox(
            ws.transport,
            ws.protocol,
            host.scheduler,
            host.config.writer,
            self._on_overflow,
            self._on_slow,
            meter,
        )
        self.billed_messages = 0
        self.closing = False
        self.close_code: CloseCode | None = None  # when the server closed it

    @property
    def key(self) -> str:
        return self.record.key

    def send(self, message: ServerMessage) -> None:
        if isinstance(message, Error):
            self.host.errors[message.status.error_code] += 1
        self.outbox.send(text_frame(codec.encode(message)))

    async def run(self) -> None:
        """Serve requests until the connection closes."""
        ws = self.ws
        wall = self.host.wall
        try:
            while True:
                data = await ws.recv()
                if self.closing:
                    continue
                now_ms = wall.now_ms()
                try:
                    if isinstance(data, str):
                        effects = self.session.receive_text(data, now_ms)
                    else:
                        effects = self.session.receive_binary(data, now_ms)
                except Exception:
                    # A bug must cost this frame an error, never the connection.
                    logger.exception("failed to handle a frame")
                    effects = [Reply(error_message(ErrorCode.INTERNAL, now_ms))]
                self._apply(effects, now_ms)
                # recv() returns at once while frames are buffered: without this,
                # one client's backlog of requests would hold the loop from everyone.
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass

    def _apply(self, effects: list[Reply | Subscribe | Unsubscribe], now_ms: int) -> None:
        try:
            for effect in effects:
                if isinstance(effect, Reply):
                    self.send(effect.message)
                elif isinstance(effect, Subscribe):
                    self.host.hub.add(self.outbox, effect.subscriptions)
                else:
                    self.host.hub.remove(self.outbox, effect.topics)
        except Exception:
            # A bug must cost this request an error frame, never the connection.
            logger.exception("failed to carry out a request's effects")
            self.send(error_message(ErrorCode.INTERNAL, now_ms))

    def close(self, code: CloseCode, error: ErrorCode | None = None) -> None:
        """Send ``error`` (if any), stop pushes and close with ``code``; idempotent."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        if error is not None:
            self.send(error_message(error, self.host.wall.now_ms()))
        self.host.hub.remove(self.outbox, list(self.session.subscriptions))
        # Queued frames go out before the close frame.
        loop = asyncio.get_running_loop()
        self.outbox.flush(loop.time())
        self.host.spawn(self.ws.close(code, CLOSE_CODES[code].reason))
        # A reader that never reads never takes the close frame either, and the
        # closing handshake waits for buffer room before its own timeout
        # starts: drop the TCP connection once the timeout has passed.
        loop.call_later(self.host.config.close_timeout_s, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self.ws.state is not State.CLOSED and self.ws.transport is not None:
            logger.info("dropping connection of key %s that did not close", key_id(self.key))
            self.ws.transport.abort()

    def _on_slow(self, outbox: Outbox) -> None:
        self.host.hub.resink(outbox, self.session.subscriptions)

    def _on_overflow(self, outbox: Outbox) -> None:
        logger.info("closing slow connection of key %s", key_id(self.key))
        self.host.slow_closed += 1
        self.close(CloseCode.SEND_FAILURE)
