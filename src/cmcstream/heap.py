"""Garbage-collector settings for a long-running server process."""

from __future__ import annotations

import gc

__all__ = ["Collector", "settle"]


def settle() -> Collector:
    """Move everything alive now out of the collector's sight, and collect less often.

    Call once start-up state is built (market history, the DEX world). Full
    collections otherwise rescan those ~100k objects, and every connection's,
    again and again while thousands of clients connect; and the engine's many
    short-lived tuples would start a young collection every 700 allocations.
    Returns the :class:`Collector` to tick from a periodic task, which makes up
    for the collections these thresholds put off.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return Collector()


class Collector:
    """The collections that :func:`settle`'s thresholds would put off too long.

    With those thresholds an object that outlives one young collection (a
    connection that lived a few seconds, a handshake waiting for its timeout)
    is looked at again only after twenty more young collections: a million
    allocations, which a quiet server may take hours to make, and any
    reference cycle it ended in stays in memory until then. ``tick`` collects
    that middle generation on a clock instead, when a young collection has
    moved objects into it since the last time. Its cost is bounded by what
    survived the young collections of one period; the full collection is left
    to the collector's own rule (when the long-lived heap has grown by a
    quarter), since with ten thousand connections open it costs ~0.5 s of the
    event loop (``benchmarks/gc_pause.py``).

    Args:
        every_s: seconds between collections of the middle generation.
    """

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._last: float | None = None

    def tick(self, now: float) -> bool:
        """Collect the middle generation if due at ``now`` (monotonic seconds); say if it did."""
        if self._last is None:
            self._last = now
            return False
        if now - self._last < self.every_s or not gc.get_count()[1]:
            return False
        gc.collect(1)
        self._last = now
        return True
