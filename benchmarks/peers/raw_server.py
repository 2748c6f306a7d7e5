"""Peer (c): the raw ceiling — pre-framed bytes, one coalesced write per connection per tick.

A picows server with the least protocol work that the load generator accepts:
picows does the upgrade and the control frames; ``welcome``, ``ack`` and ``pong``
go out through it. Each tick frames every id's push once, appends the same bytes
to each subscriber's pending list, then gives every connection one ``write()``
on the socket's transport, past picows. Nothing else: no session, no limits, no
billing. A connection whose transport holds more than :data:`DROP_ABOVE` bytes
gets nothing that tick, so a stuck reader cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Final

from peerlib import (
    Frames,
    SimClock,
    Subscriptions,
    handle_request,
    parse_args,
    ready,
    text_frame,
    tick_forever,
    welcome,
)
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

DROP_ABOVE: Final = 4 * 1024 * 1024
# Clients send only small requests; picows' default 16 KiB read buffer per
# connection would be most of a peer's memory at 10k connections.
READ_BUFFER: Final = 2048
# cmcstream's default accept queue: with asyncio's 100, a storm of handshakes
# overflows it and the dropped SYNs come back a second later.
BACKLOG: Final = 4096


class Peer(WSListener):
    __slots__ = ("pending", "raw")

    def __init__(self) -> None:
        super().__init__()
        self.raw: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.raw = transport.underlying_transport
        transport.send(WSMsgType.TEXT, welcome(CLOCK))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        SUBS.drop(self)
        self.pending = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # picows answers pings itself.
        if frame.msg_type is WSMsgType.TEXT:
            reply = handle_request(frame.get_payload_as_bytes(), self, SUBS, CLOCK)
            if reply is not None:
                transport.send(WSMsgType.TEXT, reply)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def accept(request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener:
    if "X-CMC_PRO_API_KEY" not in request.headers:
        refusal = WSUpgradeResponse.create_error_response(HTTPStatus.UNAUTHORIZED)
        return WSUpgradeResponseWithListener(refusal, None)
    return Peer()


ARGS = parse_args(__doc__.split("\n\n")[0])
FRAMES = Frames(ARGS.frames)
CLOCK = SimClock(ARGS.start, ARGS.speed)
SUBS = Subscriptions(FRAMES.ids)


def publish(now_ms: int) -> None:
    ts = str(now_ms).encode()
    dirty: list[Peer] = []
    for cid, subscribers in SUBS.by_id.items():
        frame = text_frame(FRAMES.push(cid, ts))
        for peer in subscribers:
            pending = peer.pending
            if not pending:
                dirty.append(peer)
            pending.append(frame)
    for peer in dirty:
        transport = peer.raw
        if (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= DROP_ABOVE
        ):
            transport.write(b"".join(peer.pending))
        peer.pending = []


async def main() -> None:
    server = await ws_create_server(
        accept, ARGS.host, ARGS.port, read_buffer_init_size=READ_BUFFER, backlog=BACKLOG
    )
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await tick_forever(CLOCK, FRAMES.cadence_ms, publish, ARGS.hold)


if __name__ == "__main__":
    asyncio.run(main())
