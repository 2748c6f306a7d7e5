"""Reconnect delays: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential bound) keeps a
fleet of clients from reconnecting in step after a server restart. The attempt
counter resets only after a connection has stayed up for a while, so a server
that accepts and then drops at once does not keep clients in a fast loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """The reconnect schedule.

    Attributes:
        base_s: bound of the first delay.
        cap_s: largest bound.
        limited_base_s: bound of the first delay after close 4004 (the key has
            all its connections): that lasts until another connection of the
            key goes away, so retrying fast only wastes the attempts.
        limited_cap_s: largest bound after 4004.
        reset_after_s: a connection that stayed up this long resets the counter.
        max_attempts: give up after this many failed attempts in a row
            (``None``: never).
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    limited_base_s: float = 5.0
    limited_cap_s: float = 120.0
    reset_after_s: float = 30.0
    max_attempts: int | None = None

    def delay(
        self, attempt: int, *, limited: bool = False, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 for the first retry)."""
        base, cap = (
            (self.limited_base_s, self.limited_cap_s) if limited else (self.base_s, self.cap_s)
        )
        bound = min(cap, base * 2 ** max(0, attempt - 1))
        return (rng or random).uniform(0.0, bound)
