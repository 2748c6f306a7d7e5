"""Topics to local subscribers; every push is framed once and the same bytes go to each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from cmcstream.bus.base import Bus
from cmcstream.protocol.channels import CHANNELS, Subscription
from cmcstream.server.frames import text_frame
from cmcstream.server.writer import Outbox

__all__ = ["COLLAPSIBLE_CHANNELS", "Hub"]

# Channels whose every push is a full snapshot, so a slow reader may skip to the newest.
COLLAPSIBLE_CHANNELS: Final = frozenset(spec.name for spec in CHANNELS if spec.collapsible)


class Hub:
    """The subscribers of every topic on this gateway.

    The hub tells the bus a topic is wanted on its first local subscriber and
    releases it when the last one leaves (centrifuge's node/hub split), so the
    feed computes and carries nothing for topics nobody watches.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        # Each subscriber of a topic with the sink its pushes go into (Outbox.sink).
        self._subscribers: dict[str, dict[Outbox, Callable[[bytes], None]]] = {}
        self.frames_built = 0
        self.pushes = 0
        # Told once per delivered topic that outboxes have pushes queued, and
        # when the feed ends a batch (a tick) so they are written at once.
        self.on_fanout: Callable[[], None] | None = None
        self.on_batch_end: Callable[[], None] | None = None
        # Given one encoded push every ``sample_every`` frames (the push latency).
        self.on_sample: Callable[[bytes], None] | None = None
        self.sample_every = 16
        bus.set_handler(self.deliver, self._batch_end)

    def add(self, outbox: Outbox, subscriptions: Iterable[Subscription]) -> None:
        for sub in subscriptions:
            subscribers = self._subscribers.get(sub.topic)
            if subscribers is None:
                subscribers = self._subscribers[sub.topic] = {}
                self._bus.subscribe(sub.topic)
            subscribers[outbox] = outbox.sink(sub.topic, _collapsible(sub.topic))

    def remove(self, outbox: Outbox, topics: Iterable[str]) -> None:
        for topic in topics:
            subscribers = self._subscribers.get(topic)
            if subscribers is None:
                continue
            subscribers.pop(outbox, None)
            if not subscribers:
                del self._subscribers[topic]
                self._bus.unsubscribe(topic)

    def resink(self, outbox: Outbox, topics: Iterable[str]) -> None:
        """Point ``outbox``'s latest-value topics at its current sinks (its reader
        became slow, or caught up)."""
        for topic in topics:
            if _collapsible(topic):
                subscribers = self._subscribers.get(topic)
                if subscribers is not None and outbox in subscribers:
                    subscribers[outbox] = outbox.sink(topic, True)

    @property
    def topic_count(self) -> int:
        """Topics with at least one subscriber here."""
        return len(self._subscribers)

    def subscriptions_by_channel(self) -> dict[str, int]:
        """Subscribers summed over topics, per channel."""
        counts = dict.fromkeys((spec.name for spec in CHANNELS), 0)
        for topic, subscribers in self._subscribers.items():
            channel = topic.partition("|")[0]
            counts[channel] = counts.get(channel, 0) + len(subscribers)
        return counts

    def subscriber_count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def deliver(self, topic: str, payload: bytes) -> None:
        """Hand one encoded push to every local subscriber of ``topic``."""
        sinks = self._subscribers.get(topic)
        if not sinks:
            return
        frame = text_frame(payload)
        self.frames_built += 1
        if self.on_sample is not None and self.frames_built % self.sample_every == 0:
            self.on_sample(payload)
        self.pushes += len(sinks)
        # The hot loop: one call per subscriber, straight into its queue.
        for sink in sinks.values():
            sink(frame)
        if self.on_fanout is not None:
            self.on_fanout()

    def _batch_end(self) -> None:
        if self.on_batch_end is not None:
            self.on_batch_end()


def _collapsible(topic: str) -> bool:
    return topic.partition("|")[0] in COLLAPSIBLE_CHANNELS
