"""The market side of the feed: a market source through the market engine, on its cadence."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from cmcstream.engine.events import MarketEvent
from cmcstream.engine.market import MarketEngine
from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.feed.publisher import Publisher
from cmcstream.protocol.channels import Subscription
from cmcstream.sources.base import Source

__all__ = ["MARKET_CHANNEL", "MarketFeed"]

MARKET_CHANNEL: Final = "market@crypto_latest_price"


class MarketFeed:
    """Pushes of ``market@crypto_latest_price`` for the watched ids, at each tick."""

    def __init__(
        self, source: Source[MarketEvent], engine: MarketEngine, publisher: Publisher
    ) -> None:
        self.source = source
        self.engine = engine
        self._publisher = publisher
        self._topics: dict[int, str] = {}  # watched crypto id -> topic

    def watch(self, sub: Subscription) -> None:
        cid = sub.params["crypto_ids"]
        assert isinstance(cid, int)
        self._topics[cid] = sub.topic

    def unwatch(self, sub: Subscription) -> None:
        self._topics.pop(int(sub.params["crypto_ids"]), None)

    def backfill(self, until_ms: int, observe: Callable[[MarketEvent], None] | None = None) -> None:
        """Fold the source's history into the engine, showing each event to ``observe``."""
        for event in self.source.backfill(until_ms, {}):
            if observe is not None:
                observe(event)
            self.engine.apply(event)

    def tick(self, tick_ms: int, now_ms: int) -> int:
        """Advance to ``tick_ms`` and publish the pushes due then, stamped ``now_ms``."""
        for event in self.source.step(tick_ms, {}):
            self.engine.apply(event)
        if not self._topics:
            return 0
        topics = self._topics
        publish = self._publisher.publish
        payloads = self.engine.tick(tick_ms, topics.keys())
        for payload in payloads:
            publish(topics[payload.cid], payload, now_ms)
        return len(payloads)

    def reference_prices(self, at_ms: int) -> Mapping[int, float]:
        """Market prices of every reference token's coin: what quote tokens are worth in USD."""
        prices = {}
        for token in REFERENCE_TOKENS:
            payload = self.engine.latest_price(token.cmc_id, at_ms)
            if payload is not None:
                prices[token.cmc_id] = payload.p
        return prices
