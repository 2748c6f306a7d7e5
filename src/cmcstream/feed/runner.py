"""What an app runs in place of the feed: anything that starts, stops and reports.

The simulated :class:`~cmcstream.feed.Feed`, a replay of a recording and a
relay of an upstream server all follow interest from the bus and publish
pushes onto it; the app only starts them, stops them and shows their health.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["ChargeReport", "FeedRunner"]


@runtime_checkable
class FeedRunner(Protocol):
    async def start(self) -> None:
        """Be ready to publish, and follow interest from the bus from now on."""
        ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` shows of it, beside the gateway's figures."""
        ...


@runtime_checkable
class ChargeReport(Protocol):
    """A runner that compares what it spends with what the local clients were charged."""

    def compare_with(self, charged: Callable[[], int]) -> None:
        """``charged()``: milli-credits the local clients were charged so far."""
        ...
