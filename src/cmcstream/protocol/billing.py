"""Credit metering: what a key is charged, in both models the docs describe.

PROTOCOL.md §7 and Q2. The overview charges 0.1 credit per subscription; the
marketing page and the academy guide charge 0.025 credits per ``data`` message
received. Both are :class:`CreditMeter` implementations; the default is the
overview's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BillingModel", "CreditMeter", "PerMessage", "PerSubscription", "make_meter"]


class BillingModel(enum.StrEnum):
    PER_SUBSCRIPTION = "per_subscription"
    PER_MESSAGE = "per_message"


class CreditMeter(Protocol):
    """Prices the two billable things; the server adds the results to a key's usage."""

    def for_subscriptions(self, count: int) -> float:
        """Credits for ``count`` newly added subscriptions."""
        ...

    def for_messages(self, count: int) -> float:
        """Credits for ``count`` delivered ``data`` messages."""
        ...


@dataclass(frozen=True, slots=True)
class PerSubscription:
    """The overview's model: each new subscription costs ``rate`` credits."""

    rate: float = 0.1

    def for_subscriptions(self, count: int) -> float:
        return self.rate * count

    def for_messages(self, count: int) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class PerMessage:
    """The marketing page's model: each delivered push costs ``rate`` credits."""

    rate: float = 0.025

    def for_subscriptions(self, count: int) -> float:
        return 0.0

    def for_messages(self, count: int) -> float:
        return self.rate * count


def make_meter(model: BillingModel | str, rate: float | None = None) -> CreditMeter:
    """Build the meter for ``model``, with its default rate unless ``rate`` is given."""
    model = BillingModel(model)
    if model is BillingModel.PER_SUBSCRIPTION:
        return PerSubscription() if rate is None else PerSubscription(rate)
    return PerMessage() if rate is None else PerMessage(rate)
