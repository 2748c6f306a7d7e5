"""The load generator's WebSocket client, on picows.

A connection is a :class:`picows.WSListener` with no task of its own, so ten
thousand of them cost one event loop; picows does the handshake, parses server
frames in C and hands each one to :meth:`Client.on_ws_frame`.

Two ways to take in pushes:

- *parse*: a push (``{"type":"data"…``) is counted, its envelope ``ts`` read for
  latency, and one in :data:`AUDIT_EVERY` is decoded whole and checked (type,
  channel, params, data, ts).
- *count*: every text frame is one push (each frame is one JSON object), so it
  is counted without touching its payload. Used on most connections of the
  throughput scenario, to keep the load generator's cost per push low; the
  others parse.

Replies (welcome, ack, pong, error) come before a connection counts: it parses
until it has its acks. Close frames are handled in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

__all__ = ["AUDIT_EVERY", "Client", "Stats", "bucket_us", "connect"]

AUDIT_EVERY: Final = 64
_TEXT: Final = WSMsgType.TEXT
_CLOSE: Final = WSMsgType.CLOSE
_TS_KEY: Final = b',"ts":'
_D: Final = ord("d")
_NO_STATUS: Final = 1005  # RFC 6455: a close frame without a code
_LINGER_RST: Final = struct.pack("ii", 1, 0)
# Latency histogram: 10 µs buckets up to 1 s, then 10 ms buckets up to 100 s.
_FINE: Final = 100_000
_COARSE: Final = 10_000
_decode = msgspec.json.Decoder().decode


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


async def connect(
    index: int,
    stats: Stats,
    url: str,
    key: str,
    small_rcvbuf: int,
    within_s: float,
    factory: Callable[[], Client] | None = None,
) -> Client:
    """Open connection ``index`` to ``url`` with API key ``key`` in ``within_s`` seconds
    (``factory``: a listener of a :class:`Client` subclass instead)."""
    _, client = await asyncio.wait_for(
        ws_connect(
            factory or (lambda: Client(index, stats, small_rcvbuf)),
            url,
            extra_headers={"X-CMC_PRO_API_KEY": key},
            websocket_handshake_timeout=within_s,
            # aiofastnet sets a connection up in Python, at about a third more CPU
            # than the event loop's own; its receive path gains nothing here.
            use_aiofastnet=False,
        ),
        within_s,
    )
    if not isinstance(client, Client):  # the server hung up before its 101
        raise ConnectionError("closed during the handshake")
    return client


class Client(WSListener):
    """One WebSocket connection of the load generator.

    Args:
        index: the connection's number in its load generator.
        stats: the load generator's counters.
        small_rcvbuf: receive buffer size to set (a reader with a small window).
    """

    def __init__(self, index: int, stats: Stats, small_rcvbuf: int = 0) -> None:
        super().__init__()
        self.index = index
        self.stats = stats
        self._small_rcvbuf = small_rcvbuf
        self.transport: WSTransport | None = None
        self.counting = False
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
            self.transport.send(_TEXT, text)

    def expect_acks(self, count: int) -> asyncio.Future[None]:
        self.acks_wanted = count
        self.acked = asyncio.get_running_loop().create_future()
        return self.acked

    def count_only(self) -> None:
        """Count pushes instead of parsing them, from the next frame on."""
        self.counting = True

    def pause_reading(self) -> None:
        """Stop reading: the server's frames pile up in the kernel's buffers, then its own."""
        if self.transport is not None and not self.closed:
            self.transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.underlying_transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection with a RST, so nothing lingers in TIME_WAIT."""
        if self.transport is None or self.closed:
            return
        sock = self.transport.underlying_transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.transport.disconnect(graceful=False)

    # -- listener callbacks ------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self._small_rcvbuf:
            sock = transport.underlying_transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._small_rcvbuf)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.stats.lost += 1
        self.gone.set_result(None)
        failure = ConnectionError(f"closed (code {self.close_code})")
        for waiter in (self.welcomed, self.acked, self.pong):
            if waiter is not None and not waiter.done():
                waiter.set_exception(failure)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        size = frame.payload_size
        # Control frames carry at most 125 bytes (RFC 6455 §5.5), so a longer frame is
        # data and its type, whose conversion to an enum costs more than counting it,
        # need not be read.
        if size < 126 and frame.msg_type is not _TEXT:
            self._control(transport, frame)
            return
        stats = self.stats
        stats.bytes += size + (2 if size < 126 else 4 if size < 65536 else 10)
        if self.counting:
            self.pushes += 1
            stats.pushes += 1
            return
        payload = frame.get_payload_as_bytes()
        if size <= 10 or payload[9] != _D:
            self._reply(_decode(payload))
            return
        self.pushes += 1
        stats.pushes += 1
        if stats.recording:
            self._latency(payload, size)
        if self.audit_countdown:
            self.audit_countdown -= 1
        else:
            self.audit_countdown = AUDIT_EVERY - 1
            self._audit(payload)

    def _latency(self, payload: bytes, size: int) -> None:
        stats = self.stats
        now_us = time.monotonic() * 1e6 - stats.offset_us
        # cmcstream ends every push with ``,"ts":<13 digits>}``; anything else is searched.
        if payload[size - 20 : size - 14] == _TS_KEY:
            ts = int(payload[size - 14 : size - 1])
        else:
            ts = int(payload[payload.rindex(b'"ts":') + 5 : size - 1])
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

    def _control(self, transport: WSTransport, frame: WSFrame) -> None:
        # picows answers pings itself; a close is recorded, answered, and the socket closed.
        if frame.msg_type is not _CLOSE:
            return
        code = frame.get_close_code()
        self.close_code = code.value or _NO_STATUS
        self.stats.close_codes[self.close_code] += 1
        transport.send_close(code if code.value else WSCloseCode.OK)
        transport.disconnect()

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
