"""How a connection presents its API key (PROTOCOL.md §2).

The key travels in one header of the WebSocket handshake; client and server
both name it from here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["API_KEY_HEADER"]

API_KEY_HEADER: Final = "X-CMC_PRO_API_KEY"
