"""Money math in one place: raw on-chain integers to token units, and USD values.

Chains report amounts as integers in the token's smallest unit. The engine
keeps reserves and balances as those exact integers and converts to floats
(token units, USD) only when it computes a number a client will see, so
rounding never accumulates in state.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

__all__ = ["add_up", "quotient", "scale", "units"]

quotient: Final[Callable[[int, int], float]] = operator.truediv
"""``a / b`` of two exact integers, correctly rounded, interpreted or compiled.

Python divides ints exactly and rounds once. A mypyc-compiled module divides
machine-size ints as two doubles, which rounds up to three times and changes
the last bit of many amounts of 18-decimal tokens. Calling the operator keeps
Python's division in both builds, so a seed gives the same stream in each.
"""


@lru_cache(maxsize=64)
def scale(decimals: int) -> int:
    """``10 ** decimals``, cached: only a handful of distinct decimals exist."""
    return int(10**decimals)


def units(raw: int, decimals: int) -> float:
    """A raw integer amount in token units (``raw / 10**decimals``), correctly rounded."""
    return quotient(raw, scale(decimals))


def _left_to_right(values: Iterable[float], start: float) -> float:
    total = start
    for value in values:
        total += value
    return total


# A batch of values must add up to exactly what adding them one by one gives, so that
# folding a second of trades at once changes no float. Built-in ``sum`` does that, and
# fast, up to Python 3.11; from 3.12 it compensates rounding, so the loop stands in.
add_up: Callable[[Iterable[float], float], float] = (
    sum if sum((1e100, 1.0, -1e100), 0.0) == 0.0 else _left_to_right
)
"""``start + values[0] + values[1] + …``, added left to right as floats."""
