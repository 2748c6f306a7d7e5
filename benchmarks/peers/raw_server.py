"""Peer (c): the raw ceiling — pre-framed bytes, one coalesced write per connection per tick.

A bare :class:`asyncio.Protocol` with the least protocol work that the load
generator accepts: the HTTP upgrade, ``welcome``, ``ack`` and ``pong``. Each
tick frames every id's push once, appends the same bytes to each subscriber's
pending list, then gives every connection one ``write()``. Nothing else: no
session, no limits, no billing. A connection whose transport holds more than
:data:`DROP_ABOVE` bytes gets nothing that tick, so a stuck reader cannot grow
memory without bound.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Final, cast

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

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DROP_ABOVE: Final = 4 * 1024 * 1024


class Peer(asyncio.Protocol):
    __slots__ = ("buf", "open", "pending", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        SUBS.drop(self)
        self.pending = []

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            self._upgrade()
        if self.open:
            self._frames()

    def _upgrade(self) -> None:
        assert self.transport is not None
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buf = self.buf[:end], self.buf[end + 4 :]
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get(b"sec-websocket-key")
        if key is None or b"x-cmc_pro_api_key" not in headers:
            self.transport.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n\r\n"
            + text_frame(welcome(CLOCK))
        )
        self.open = True

    def _frames(self) -> None:
        assert self.transport is not None
        buf = self.buf
        while len(buf) >= 6:
            opcode, length = buf[0] & 15, buf[1] & 127
            start = 2
            if length == 126:
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(buf[2:10], "big"), 10
            end = start + 4 + length
            if len(buf) < end:
                break
            mask = buf[start : start + 4] * (length // 4 + 1)
            payload = (
                int.from_bytes(buf[start + 4 : end], "big") ^ int.from_bytes(mask[:length], "big")
            ).to_bytes(length, "big")
            buf = buf[end:]
            if opcode == 1:
                reply = handle_request(payload, self, SUBS, CLOCK)
                if reply is not None:
                    self.transport.write(text_frame(reply))
            elif opcode == 8:
                self.transport.write(b"\x88\x02" + payload[:2])
                self.transport.close()
                break
            elif opcode == 9:
                self.transport.write(bytes((0x8A, length)) + payload)
        self.buf = buf


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
        transport = peer.transport
        if (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= DROP_ABOVE
        ):
            transport.write(b"".join(peer.pending))
        peer.pending = []


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Peer, ARGS.host, ARGS.port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await tick_forever(CLOCK, FRAMES.cadence_ms, publish, ARGS.hold)


if __name__ == "__main__":
    asyncio.run(main())
