"""What the WebSocket layer is told: TLS, subprotocols, and when a client was last heard.

PROTOCOL.md §1 and §3.5. The server speaks plain ``ws://`` by default and
``wss://`` with a certificate and key. Browsers that ask for a subprotocol
(``new WebSocket(url, ["json"])``) get the first one they offered echoed back,
since the protocol is the same JSON whatever they call it; permessage-deflate
is declined, because every push is one pre-built frame shared by all its
subscribers (DESIGN.md, principle 4), and a client that offered it goes on
uncompressed, as RFC 7692 provides.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

from cmcstream.server.wsconn import CycleFreeConnection

__all__ = ["ActivityConnection", "echo_subprotocol", "tls_context"]


class ActivityConnection(CycleFreeConnection):
    """A server connection that notes when it last received anything at all (and ends
    in no reference cycle, see :mod:`cmcstream.server.wsconn`).

    Every frame counts as client activity (§3.5), RFC 6455 control pings
    included: libraries keep connections alive that way, and those frames
    never reach the application.
    """

    last_received: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_received = asyncio.get_running_loop().time()

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        super().data_received(data)


def echo_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Accept whatever subprotocol the client asked for first (none if it asked for none)."""
    return subprotocols[0] if subprotocols else None


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context for ``cert`` (PEM, with its chain) and its private ``key``.

    Raises:
        ValueError: the files cannot be read or do not belong together.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from None
    return context
