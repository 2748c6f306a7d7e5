"""Garbage-collector settings for a long-running server process."""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Move everything alive now out of the collector's sight, and collect less often.

    Call once start-up state is built (market history, the DEX world). Full
    collections otherwise rescan those ~100k objects, and every connection's,
    again and again while thousands of clients connect; and the engine's many
    short-lived tuples would start a young collection every 700 allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
