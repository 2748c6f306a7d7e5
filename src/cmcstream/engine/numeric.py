"""Money math in one place: raw on-chain integers to token units, and USD values.

Chains report amounts as integers in the token's smallest unit. The engine
keeps reserves and balances as those exact integers and converts to floats
(token units, USD) only when it computes a number a client will see, so
rounding never accumulates in state.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["scale", "units"]


@lru_cache(maxsize=64)
def scale(decimals: int) -> int:
    """``10 ** decimals``, cached: only a handful of distinct decimals exist."""
    return int(10**decimals)


def units(raw: int, decimals: int) -> float:
    """A raw integer amount in token units (``raw / 10**decimals``), correctly rounded."""
    return raw / scale(decimals)
