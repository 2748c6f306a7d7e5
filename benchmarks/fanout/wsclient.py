"""The load generator's WebSocket client: handshake by hand, server frames parsed in place.

A connection is an :class:`asyncio.Protocol` with no task of its own, so ten
thousand of them cost one event loop. Server frames are unmasked, so the parser
walks headers and slices payloads without copying them; client frames carry a
zero masking key (RFC 6455 allows any key), which makes masking a no-op.

Two ways to take in pushes:

- *parse*: every frame is walked; a push (``{"type":"data"…``) is counted, its
  envelope ``ts`` read for latency, and one in :data:`AUDIT_EVERY` is decoded
  whole and checked (type, channel, params, data, ts).
- *count*: pushes are counted with one ``bytes.count`` per read, which C does at
  memory speed. Used on most connections of the throughput scenario so that the
  load generator is never what limits the server; the others parse.

Replies (welcome, ack, pong, error) and close frames are only ever seen by
parsing connections; a connection parses until it has its acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter
from typing import Any, Final, cast

import msgspec

__all__ = ["AUDIT_EVERY", "Client", "Stats", "client_frame", "upgrade_request"]

AUDIT_EVERY: Final = 64
_PUSH: Final = b'{"type":"data"'
_PUSH_TAIL: Final = len(_PUSH) - 1
_TS_KEY: Final = b',"ts":'
_D: Final = ord("d")
_LINGER_RST: Final = struct.pack("ii", 1, 0)
# Latency histogram: 10 µs buckets up to 1 s, then 10 ms buckets up to 100 s.
_FINE: Final = 100_000
_COARSE: Final = 10_000
_decode = msgspec.json.Decoder().decode


def upgrade_request(host: str, port: int, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"X-CMC_PRO_API_KEY: {key}\r\n\r\n"
    ).encode()


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A final, masked client frame with a zero masking key."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\x00\x00\x00\x00" + payload


class Stats:
    """What every connection of one load generator adds to."""

    def __init__(self, start_ms: int, speed: float) -> None:
        self.pushes = 0
        self.bytes = 0
        self.recording = False
        self.hist = [0] * (_FINE + _COARSE)
        self.lat_count = 0
        self.lat_negative = 0
        self.audited = 0
        self.audit_bad = 0
        self.ts_fallback = 0
        self.close_codes: Counter[int] = Counter()
        self.lost = 0
        self.errors: Counter[int] = Counter()
        # Latency clock: the server stamps ``ts`` in simulated ms, which run ``speed``
        # times faster than monotonic time from an origin that a calibration finds.
        self.start_ms = start_ms
        self.us_per_sim_ms = 1000.0 / speed
        self.offset_us = 0.0

    def reset_latency(self) -> None:
        self.hist = [0] * (_FINE + _COARSE)
        self.lat_count = 0
        self.lat_negative = 0

    def sparse_hist(self) -> list[list[int]]:
        return [[i, n] for i, n in enumerate(self.hist) if n]


def bucket_us(index: int) -> float:
    """The upper bound, in µs, of latency histogram bucket ``index``."""
    if index < _FINE:
        return (index + 1) * 10.0
    return (index - _FINE + 1) * 10_000.0


class Client(asyncio.Protocol):
    """One WebSocket connection of the load generator.

    Args:
        index: the connection's number in its load generator.
        stats: the load generator's counters.
        request: the HTTP upgrade request to send.
        small_rcvbuf: receive buffer size to set (a reader with a small window).
    """

    def __init__(self, index: int, stats: Stats, request: bytes, small_rcvbuf: int = 0) -> None:
        self.index = index
        self.stats = stats
        self._request = request
        self._small_rcvbuf = small_rcvbuf
        self.transport: asyncio.Transport | None = None
        self._open = False
        self._head = b""
        self._buf = b""
        self._tail = b""
        self.counting = False
        self._want_count = False
        self.pushes = 0
        self.audit_countdown = index % AUDIT_EVERY
        self.closed = False
        self.close_code: int | None = None
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[float] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.acked: asyncio.Future[None] | None = None
        self.acks_wanted = 0
        self.pong: asyncio.Future[tuple[float, int]] | None = None

    # -- commands ----------------------------------------------------------------------------

    def send_text(self, text: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(client_frame(text))

    def expect_acks(self, count: int) -> asyncio.Future[None]:
        self.acks_wanted = count
        self.acked = asyncio.get_running_loop().create_future()
        return self.acked

    def count_only(self) -> None:
        """Count pushes instead of parsing them, from the next frame boundary on."""
        self._want_count = True
        if not self._buf:
            self.counting = True
            self._tail = b""

    def abort(self) -> None:
        """Drop the connection with a RST, so nothing lingers in TIME_WAIT."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.transport.abort()

    # -- protocol callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = tcp = cast(asyncio.Transport, transport)
        if self._small_rcvbuf:
            sock = tcp.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._small_rcvbuf)
        tcp.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.stats.lost += 1
        self.gone.set_result(None)
        failure = ConnectionError(f"closed (code {self.close_code})")
        for waiter in (self.welcomed, self.acked, self.pong):
            if waiter is not None and not waiter.done():
                waiter.set_exception(failure)

    def data_received(self, data: bytes) -> None:
        self.stats.bytes += len(data)
        if self.counting:
            self._count(data)
        elif self._open:
            self._parse(data)
        else:
            self._handshake(data)

    def _handshake(self, data: bytes) -> None:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            return
        self._head = b""
        status = head[: head.find(b"\r\n")]
        if b" 101 " not in status:
            if not self.welcomed.done():
                self.welcomed.set_exception(ConnectionError(status.decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return
        self._open = True
        rest = head[end + 4 :]
        if rest:
            self._parse(rest)

    def _count(self, data: bytes) -> None:
        found = data.count(_PUSH)
        tail = self._tail
        if tail:
            # Only a push header split across two reads can be in here.
            found += (tail + data[:_PUSH_TAIL]).count(_PUSH)
        self._tail = data[-_PUSH_TAIL:]
        self.pushes += found
        self.stats.pushes += found

    def _parse(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        size = len(buf)
        pos = 0
        found = 0
        stats = self.stats
        recording = stats.recording
        now_us = time.monotonic() * 1e6 - stats.offset_us if recording else 0.0
        while size - pos >= 2:
            length = buf[pos + 1] & 127
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            if buf[pos] == 0x81 and length > 10 and buf[start + 9] == _D:
                found += 1
                if recording:
                    if buf[end - 20 : end - 14] == _TS_KEY:
                        ts = int(buf[end - 14 : end - 1])
                    else:
                        ts = int(buf[buf.rindex(b'"ts":', start, end) + 5 : end - 1])
                        stats.ts_fallback += 1
                    lat = now_us - (ts - stats.start_ms + 0.5) * stats.us_per_sim_ms
                    if lat < 0:
                        stats.lat_negative += 1
                        lat = 0.0
                    index = int(lat) // 10
                    if index >= _FINE:
                        index = min(_FINE + int(lat) // 10_000, _FINE + _COARSE - 1)
                    stats.hist[index] += 1
                    stats.lat_count += 1
                if self.audit_countdown:
                    self.audit_countdown -= 1
                else:
                    self.audit_countdown = AUDIT_EVERY - 1
                    self._audit(buf[start:end])
            else:
                self._other(buf[pos] & 15, buf[start:end])
            pos = end
        self._buf = buf[pos:] if pos < size else b""
        self.pushes += found
        stats.pushes += found
        if self._want_count and not self._buf:
            self.counting = True
            self._tail = b""

    def _audit(self, payload: bytes) -> None:
        stats = self.stats
        stats.audited += 1
        try:
            push = _decode(payload)
            ok = (
                isinstance(push, dict)
                and push.get("type") == "data"
                and isinstance(push.get("channel"), str)
                and isinstance(push.get("params"), dict)
                and isinstance(push.get("data"), dict)
                and isinstance(push.get("ts"), int)
            )
        except msgspec.DecodeError:
            ok = False
        if not ok:
            stats.audit_bad += 1

    def _other(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == 1:
            self._reply(_decode(payload))
        elif opcode == 8:
            self.close_code = (payload[0] << 8) | payload[1] if len(payload) >= 2 else 1005
            self.stats.close_codes[self.close_code] += 1
            if not self.transport.is_closing():
                self.transport.write(client_frame(payload[:2], opcode=8))
                self.transport.close()
        elif opcode == 9:
            self.transport.write(client_frame(payload, opcode=10))

    def _reply(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "welcome":
            if not self.welcomed.done():
                self.welcomed.set_result(time.monotonic())
        elif kind == "ack":
            self.acks_wanted -= 1
            if self.acks_wanted <= 0 and self.acked is not None and not self.acked.done():
                self.acked.set_result(None)
        elif kind == "pong":
            if self.pong is not None and not self.pong.done():
                self.pong.set_result((time.monotonic(), int(message["ts"])))
        elif kind == "error":
            self.stats.errors[int(message.get("code", 0))] += 1
            if self.acked is not None and not self.acked.done():
                self.acked.set_exception(RuntimeError(f"error frame: {message}"))
