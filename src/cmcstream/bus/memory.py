"""The default bus: one process, direct calls, no copies."""

from __future__ import annotations

from cmcstream.bus.base import BusHandler

__all__ = ["MemoryBus"]


class MemoryBus:
    """A bus for a single node: publishing calls the hub synchronously."""

    def __init__(self) -> None:
        self._handler: BusHandler | None = None
        self._topics: set[str] = set()
        self.published = 0

    def set_handler(self, handler: BusHandler) -> None:
        self._handler = handler

    def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)

    def is_subscribed(self, topic: str) -> bool:
        return topic in self._topics

    def publish(self, topic: str, payload: bytes) -> None:
        if topic in self._topics and self._handler is not None:
            self.published += 1
            self._handler(topic, payload)

    async def aclose(self) -> None:
        self._topics.clear()
        self._handler = None
