"""The header of a server-to-client WebSocket text frame, built once per message.

RFC 6455 §5.2: a server frame is unmasked, so header + payload is the whole
frame, and the same bytes can go to every subscriber. This is the fan-out fast
path (DESIGN.md, principle 4); it is only used on connections that negotiated
no extension (the server disables permessage-deflate), and only while the
connection is open. Everything else about the protocol is the websockets
library's.
"""

from __future__ import annotations

import struct

__all__ = ["text_frame"]

_FIN_TEXT = 0x81
_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (UTF-8 JSON)."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _pack_short(_FIN_TEXT, 126, size) + payload
    return _pack_long(_FIN_TEXT, 127, size) + payload
