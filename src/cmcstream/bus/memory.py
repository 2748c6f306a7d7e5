"""The default bus: one process, direct calls, no copies."""

from __future__ import annotations

from collections.abc import Callable

from cmcstream.bus.base import BusHandler, InterestHandler

__all__ = ["MemoryBus"]


class MemoryBus:
    """A bus for one feed and one gateway in the same process: publishing calls the hub."""

    def __init__(self) -> None:
        self._handler: BusHandler | None = None
        self._batch_end: Callable[[], None] | None = None
        self._on_watch: InterestHandler | None = None
        self._on_unwatch: InterestHandler | None = None
        self._topics: set[str] = set()
        self.published = 0

    def set_handler(self, handler: BusHandler, batch_end: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._batch_end = batch_end

    def subscribe(self, topic: str) -> None:
        if topic not in self._topics:
            self._topics.add(topic)
            if self._on_watch is not None:
                self._on_watch(topic)

    def unsubscribe(self, topic: str) -> None:
        if topic in self._topics:
            self._topics.discard(topic)
            if self._on_unwatch is not None:
                self._on_unwatch(topic)

    def set_interest(self, on_watch: InterestHandler, on_unwatch: InterestHandler) -> None:
        self._on_watch, self._on_unwatch = on_watch, on_unwatch
        for topic in list(self._topics):
            on_watch(topic)

    def publish(self, topic: str, payload: bytes) -> None:
        if topic in self._topics and self._handler is not None:
            self.published += 1
            self._handler(topic, payload)

    def flush(self) -> None:
        if self._batch_end is not None:
            self._batch_end()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        self._topics.clear()
        self._handler = self._batch_end = None
        self._on_watch = self._on_unwatch = None
