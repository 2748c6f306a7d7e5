"""Several live sources (chains) as one: one engine fed from every chain at once.

Each source keeps its own history and its own reorg handling; the merged
source starts and closes them together, wakes up when any has events, and
hands out theirs merged by event time. When one of them rewinds, the whole
history is handed out again, so the feed rebuilds the engine from what still
stands on every chain.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from cmcstream.engine.events import DexEvent

__all__ = ["MergedSource"]


class _Live(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def wait(self) -> None: ...

    def take_rewind(self) -> bool: ...

    def history(self) -> Sequence[DexEvent]: ...

    def backfill(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[DexEvent]: ...

    def step(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[DexEvent]: ...


def _ts(event: DexEvent) -> int:
    return getattr(event, "ts", 0)


def _merged(parts: Iterable[Iterable[DexEvent]]) -> list[DexEvent]:
    """One list by time; each part keeps its own order (a chain's is the chain's)."""
    return list(heapq.merge(*(list(p) for p in parts), key=_ts))


class MergedSource:
    """Live sources of several chains as one :class:`~cmcstream.feed.feed.LiveSource`."""

    def __init__(self, sources: Sequence[_Live]) -> None:
        if not sources:
            raise ValueError("no sources to merge")
        self.sources = list(sources)

    async def start(self) -> None:
        started: list[_Live] = []
        try:
            for source in self.sources:
                await source.start()
                started.append(source)
        except BaseException:
            for source in started:
                await source.aclose()
            raise

    async def aclose(self) -> None:
        await asyncio.gather(*(source.aclose() for source in self.sources))

    def backfill(self, until_ms: int, prices: Mapping[int, float], /) -> list[DexEvent]:
        return _merged(s.backfill(until_ms, prices) for s in self.sources)

    def step(self, until_ms: int, prices: Mapping[int, float], /) -> list[DexEvent]:
        return _merged(s.step(until_ms, prices) for s in self.sources)

    async def wait(self) -> None:
        """Return when any source has events."""
        waits = [asyncio.ensure_future(source.wait()) for source in self.sources]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def take_rewind(self) -> bool:
        # Every flag is taken, not only up to the first that is set.
        rewound = [source.take_rewind() for source in self.sources]
        return any(rewound)

    def history(self) -> list[DexEvent]:
        return _merged(s.history() for s in self.sources)
