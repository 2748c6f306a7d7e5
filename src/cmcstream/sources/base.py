"""The source interface: what feeds the engines.

A source only produces raw, normalized events (a trade, a swap, a liquidity
change, a transfer, a balance change, a listing); it never builds a channel
payload. The simulators implement it, and so can a chain, exchange feeds or a
recording: the engines compute every push the same way from any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

__all__ = ["Source"]

Event_co = TypeVar("Event_co", covariant=True)


class Source(Protocol[Event_co]):
    """Events in time order, up to a time the feed asks for.

    ``prices`` are the market's current USD prices by CoinMarketCap id, for
    sources that need a reference (a simulated DEX prices its quote tokens
    with them); others ignore them.
    """

    def backfill(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[Event_co]:
        """The history before ``until_ms`` (the feed's start), oldest first."""
        ...

    def step(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[Event_co]:
        """What happened since the last call, up to ``until_ms``."""
        ...
