"""The bus interface and its contract.

A bus carries *updates*: a topic (the canonical subscription identity, e.g.
``market@crypto_latest_price|1``) and the JSON of the whole push, encoded once.
A node subscribes to a topic only while it has a local subscriber to it.

Contract every implementation keeps:
- delivery is at most once, in publish order per topic;
- ``publish`` never blocks on a slow subscriber;
- a handler receives only topics it is subscribed to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Bus", "BusHandler"]

BusHandler = Callable[[str, bytes], None]


class Bus(Protocol):
    def set_handler(self, handler: BusHandler) -> None:
        """Where this node's updates go (the hub)."""
        ...

    def subscribe(self, topic: str) -> None:
        """Start receiving ``topic``; called on a topic's first local subscriber."""
        ...

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``; called when its last local subscriber leaves."""
        ...

    def is_subscribed(self, topic: str) -> bool:
        """Whether any node receives ``topic`` (lets the engine skip unwatched work)."""
        ...

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one encoded update to whoever receives ``topic``."""
        ...

    async def aclose(self) -> None:
        """Release the bus's resources."""
        ...
