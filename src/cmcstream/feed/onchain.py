"""The on-chain side of the feed: a DEX source through the on-chain engine, step by step."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from itertools import islice

from cmcstream.engine.events import DexEvent
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.feed.publisher import Publisher
from cmcstream.protocol.channels import Subscription
from cmcstream.sources.base import Source

__all__ = ["OnchainFeed"]

_STEP_FLUSH_S = 0.005  # longest a push waits inside a busy step
_STEP_CHUNK = 64  # events folded per engine call between checks of that wait


class OnchainFeed:
    """Pushes of the nine ``onchain@`` channels, as the source's events happen."""

    def __init__(
        self,
        source: Source[DexEvent],
        engine: OnchainEngine,
        publisher: Publisher,
        now_ms: Callable[[], int],
    ) -> None:
        self.source = source
        self.engine = engine
        self._publisher = publisher
        self._now_ms = now_ms  # wall time, for the envelope

    def watch(self, sub: Subscription, sim_ms: int) -> None:
        self.engine.watch(sub, sim_ms)

    def unwatch(self, sub: Subscription) -> None:
        self.engine.unwatch(sub)

    def step(self, step_ms: int, prices: Mapping[int, float]) -> int:
        """Advance the source to ``step_ms`` and publish the pushes; returns how many."""
        engine, publisher = self.engine, self._publisher
        publish, wall, clock = publisher.publish, self._now_ms, time.monotonic
        now_ms = wall()
        flushed = clock()
        published = 0
        events = iter(self.source.step(step_ms, prices))
        while chunk := list(islice(events, _STEP_CHUNK)):
            for topic, payload in engine.apply_many(chunk):
                published += publish(topic, payload, now_ms)
            # A busy step takes a while: what is ready leaves every few ms
            # instead of after the whole step, stamped with its send time.
            if clock() - flushed > _STEP_FLUSH_S:
                publisher.flush()
                flushed, now_ms = clock(), wall()
        for topic, payload in engine.advance(step_ms):
            published += publish(topic, payload, now_ms)
        publisher.flush()
        return published
