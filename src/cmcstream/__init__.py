"""cmcstream: a protocol-faithful CoinMarketCap WebSocket API server, and its client.

The client is :func:`connect` (async) and :class:`SyncClient` (blocking); its
errors are in :mod:`cmcstream.exceptions`.
"""

from cmcstream import exceptions
from cmcstream.client import (
    Ack,
    ConnectionState,
    Outage,
    Overflow,
    Push,
    Stream,
    SyncClient,
    connect,
)
from cmcstream.version import __version__

__all__ = [
    "Ack",
    "ConnectionState",
    "Outage",
    "Overflow",
    "Push",
    "Stream",
    "SyncClient",
    "__version__",
    "connect",
    "exceptions",
]
