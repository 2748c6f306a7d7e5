"""The bus: the one seam between the feed, which produces pushes, and gateways, which deliver them.

A bus carries *updates*: a topic (the canonical subscription identity, e.g.
``market@crypto_latest_price|1``) and the JSON of the whole push, encoded once
by the feed. It has two sides:

- a **gateway** says which topics its clients watch (:meth:`Bus.subscribe`
  on a topic's first local subscriber, :meth:`Bus.unsubscribe` after its last)
  and receives their updates through its handler, with a call to its
  batch-end callback after each batch;
- the **feed** hears which topics are watched anywhere through its interest
  callbacks (told once when the first gateway watches a topic, once when the
  last one stops), publishes updates, and ends each batch with :meth:`Bus.flush`.

Contract every implementation keeps (``tests/bus`` runs it against each):
- a gateway receives only the topics it is subscribed to, at most once per
  publish, in publish order per topic;
- ``publish`` and ``flush`` never block on a slow gateway;
- interest is told exactly once per change across all gateways, and every
  topic already watched is told to a feed that starts later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Bus", "BusHandler", "InterestHandler"]

BusHandler = Callable[[str, bytes], None]
InterestHandler = Callable[[str], None]


class Bus(Protocol):
    # -- the gateway side --------------------------------------------------------------------

    def set_handler(self, handler: BusHandler, batch_end: Callable[[], None] | None = None) -> None:
        """Where this gateway's updates go (the hub), and whom to tell a batch is complete."""
        ...

    def subscribe(self, topic: str) -> None:
        """Start receiving ``topic``; called on a topic's first local subscriber."""
        ...

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``; called when its last local subscriber leaves."""
        ...

    # -- the feed side -----------------------------------------------------------------------

    def set_interest(self, on_watch: InterestHandler, on_unwatch: InterestHandler) -> None:
        """Be told when a topic becomes watched by some gateway, and when by none."""
        ...

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one encoded update to every gateway that receives ``topic``."""
        ...

    def flush(self) -> None:
        """End a batch: what was published goes out now, not on a later loop pass."""
        ...

    # -- both --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (a no-op in one process)."""
        ...

    async def aclose(self) -> None:
        """Release the bus's resources."""
        ...
