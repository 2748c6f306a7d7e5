"""cmcstream: a protocol-faithful CoinMarketCap WebSocket API server, and its client.

The client is :func:`connect` (async) and :class:`SyncClient` (blocking); its
errors are in :mod:`cmcstream.exceptions`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmcstream import exceptions
from cmcstream.version import __version__

if TYPE_CHECKING:
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

_CLIENT = frozenset(__all__) - {"__version__", "exceptions"}


def __getattr__(name: str) -> Any:
    # The client (asyncio, websockets) loads on first use, so the sans-I/O
    # layers (``cmcstream.protocol``, the engine) import without it.
    if name in _CLIENT:
        return getattr(importlib.import_module("cmcstream.client"), name)
    raise AttributeError(f"module 'cmcstream' has no attribute {name!r}")
