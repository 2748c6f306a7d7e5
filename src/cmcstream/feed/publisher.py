"""Encode once, publish once: a payload becomes the bytes of its whole push, per topic."""

from __future__ import annotations

from typing import Any

from cmcstream.bus.base import Bus
from cmcstream.protocol import codec
from cmcstream.protocol.channels import Subscription

__all__ = ["Publisher"]


class Publisher:
    """Publishes pushes of watched topics; the envelope head of each topic is built once."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._prefixes: dict[str, bytes] = {}
        self.published = 0

    def watch(self, sub: Subscription) -> None:
        self._prefixes[sub.topic] = codec.data_prefix(sub.channel, dict(sub.params))

    def unwatch(self, topic: str) -> None:
        self._prefixes.pop(topic, None)

    def publish(self, topic: str, payload: Any, now_ms: int) -> int:
        """Publish ``payload`` on ``topic`` stamped ``now_ms``; 0 when nobody watches it."""
        prefix = self._prefixes.get(topic)
        if prefix is None:
            return 0
        self._bus.publish(topic, codec.encode_data(prefix, payload, now_ms))
        self.published += 1
        return 1

    def flush(self) -> None:
        self._bus.flush()
