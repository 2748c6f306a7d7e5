"""Drops the second copy of a swap or liquidity event.

CoinMarketCap pushes a swap once per subscribed token, so a pool whose two
tokens are both subscribed delivers it twice (PROTOCOL.md §8), and a reconnect
can replay one. The identity of an event is its chain, ``tx`` and log index
(``lgid`` on EVM chains, ``iix`` on Solana, §14). Memory is bounded: the oldest
identities are forgotten first.
"""

from __future__ import annotations

from typing import Any

from cmcstream.protocol.channels import DEDUPED_CHANNELS

__all__ = ["DEDUPED_CHANNELS", "Deduper"]


class Deduper:
    """Remembers the last ``capacity`` event identities it saw."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._seen: dict[tuple[Any, ...], None] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, channel: str, data: Any) -> bool:
        """Whether this push repeats one already seen; remembers it when it does not.

        Pushes without ``tx`` or without a log index are never duplicates: a
        transaction may hold several swaps, and without the index they cannot
        be told apart.
        """
        if isinstance(data, dict):
            tx, lgid, iix, pid = data.get("tx"), data.get("lgid"), data.get("iix"), data.get("pid")
        else:
            tx = getattr(data, "tx", None)
            lgid, iix, pid = getattr(data, "lgid", None), getattr(data, "iix", None), data.pid
        index = lgid if lgid is not None else iix
        if tx is None or index is None:
            return False
        key = (channel, pid, tx, index)
        seen = self._seen
        if key in seen:
            self.dropped += 1
            return True
        seen[key] = None
        if len(seen) > self._capacity:
            del seen[next(iter(seen))]
        return False
