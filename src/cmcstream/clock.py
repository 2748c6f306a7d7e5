"""Clocks: the only place the package reads the time.

The engine and the protocol never call :func:`time.time`; they are handed a
:class:`Clock` (or plain timestamps taken from one). The server runs on a
:class:`SimClock`, whose ``speed`` makes simulated time pass faster than wall
time, so cadences, history and rolling windows all follow ``--speed``. Tests
use :class:`ManualClock` and advance it by hand.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SimClock", "SystemClock"]


class Clock(Protocol):
    """What a component needs to know about time."""

    def now_ms(self) -> int:
        """Current (possibly simulated) epoch time, in milliseconds."""
        ...

    def wall_delay(self, sim_ms: float) -> float:
        """Wall-clock seconds that ``sim_ms`` of this clock's time take."""
        ...


class SystemClock:
    """Real time: epoch milliseconds from the operating system."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wall_delay(self, sim_ms: float) -> float:
        return max(sim_ms, 0.0) / 1000.0


class SimClock:
    """Simulated time that starts at ``start_ms`` and runs ``speed`` times faster.

    Args:
        speed: how many simulated seconds pass per wall second (1.0 = real time).
        start_ms: simulated epoch ms at creation; defaults to the current wall time.
    """

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._origin_ms = time.time_ns() // 1_000_000 if start_ms is None else int(start_ms)
        # Monotonic, so simulated time never jumps when the system clock is adjusted.
        self._origin_mono = time.monotonic()

    def now_ms(self) -> int:
        elapsed = time.monotonic() - self._origin_mono
        return self._origin_ms + int(elapsed * self.speed * 1000.0)

    def wall_delay(self, sim_ms: float) -> float:
        return max(sim_ms, 0.0) / 1000.0 / self.speed


class ManualClock:
    """A clock that moves only when told to; for tests.

    Args:
        start_ms: the initial epoch ms.
    """

    def __init__(self, start_ms: int = 1_778_659_200_000) -> None:
        self._now = int(start_ms)

    def now_ms(self) -> int:
        return self._now

    def wall_delay(self, sim_ms: float) -> float:
        return max(sim_ms, 0.0) / 1000.0

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` milliseconds and return the new time."""
        if ms < 0:
            raise ValueError("a clock does not run backwards")
        self._now += int(ms)
        return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (which must not be in the past)."""
        if now_ms < self._now:
            raise ValueError("a clock does not run backwards")
        self._now = int(now_ms)
