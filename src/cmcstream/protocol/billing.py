"""Credit metering: what a key is charged, in both models the docs describe, exactly.

PROTOCOL.md §7 and Q2. The overview charges 0.1 credit per subscription; the
marketing page and the academy guide charge 0.025 credits per ``data`` message
received. Both are :class:`CreditMeter` implementations; the default is the
overview's.

Every amount is an integer number of milli-credits: 0.1 added fifty times is
exactly 5, and a limit is reached exactly, never overrun by a rounding error.
A key's month of usage is an :class:`Account` shared by all its connections;
a charge is taken from it only if it fits (:meth:`Account.take`), so nothing
is delivered or acked beyond the limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

__all__ = [
    "MILLI",
    "Account",
    "BillingModel",
    "CreditMeter",
    "PerMessage",
    "PerSubscription",
    "format_credits",
    "make_meter",
    "to_milli",
]

MILLI = 1000  # milli-credits per credit


def to_milli(credits: float | int | str | Decimal) -> int:
    """``credits`` as an exact integer of milli-credits.

    Raises:
        ValueError: a negative amount, or one finer than a thousandth of a credit.
    """
    try:
        exact = Decimal(str(credits)) * MILLI
    except InvalidOperation:
        raise ValueError(f"not a number of credits: {credits!r}") from None
    if not exact.is_finite() or exact < 0 or exact != exact.to_integral_value():
        raise ValueError(f"credits must be a non-negative multiple of 0.001, not {credits!r}")
    return int(exact)


def format_credits(milli: int) -> str:
    """Milli-credits as a decimal number of credits, without rounding (``12.5``)."""
    whole, part = divmod(milli, MILLI)
    return f"{whole:,}" if not part else f"{whole:,}.{part:03d}".rstrip("0")


class BillingModel(enum.StrEnum):
    PER_SUBSCRIPTION = "per_subscription"
    PER_MESSAGE = "per_message"


class CreditMeter(Protocol):
    """Prices the billable things in milli-credits."""

    @property
    def model(self) -> BillingModel: ...

    @property
    def rate(self) -> int:
        """Milli-credits of one billable thing: the least a key must have left to use it."""
        ...

    def for_subscriptions(self, count: int) -> int:
        """Milli-credits for ``count`` newly added subscriptions."""
        ...


@dataclass(frozen=True, slots=True)
class PerSubscription:
    """The overview's model: each new subscription costs ``rate`` milli-credits."""

    rate: int = 100

    @property
    def model(self) -> BillingModel:
        return BillingModel.PER_SUBSCRIPTION

    def for_subscriptions(self, count: int) -> int:
        return self.rate * count


@dataclass(frozen=True, slots=True)
class PerMessage:
    """The marketing page's model: each delivered push costs ``rate`` milli-credits."""

    rate: int = 25

    @property
    def model(self) -> BillingModel:
        return BillingModel.PER_MESSAGE

    def for_subscriptions(self, count: int) -> int:
        return 0


def make_meter(model: BillingModel | str, rate: float | str | None = None) -> CreditMeter:
    """Build the meter for ``model``; ``rate`` (in credits) overrides its default.

    Raises:
        ValueError: unknown model, or a rate that is not a positive multiple of 0.001.
    """
    model = BillingModel(model)
    cls: type[PerSubscription] | type[PerMessage] = (
        PerSubscription if model is BillingModel.PER_SUBSCRIPTION else PerMessage
    )
    if rate is None:
        return cls()
    milli = to_milli(rate)
    if not milli:
        raise ValueError("a credit rate must be positive")
    return cls(milli)


class Account:
    """One key's credits for the current month, shared by all its connections.

    Attributes:
        limit: the month's allowance, milli-credits.
        spent: milli-credits taken this month (saved or not).
        messages: ``data`` messages delivered this month.
        unsaved: milli-credits and messages not yet handed to the store.
    """

    __slots__ = ("limit", "messages", "spent", "unsaved_messages", "unsaved_milli")

    def __init__(self, limit: int, spent: int = 0, messages: int = 0) -> None:
        self.limit = limit
        self.spent = spent
        self.messages = messages
        self.unsaved_milli = 0
        self.unsaved_messages = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)

    def take(self, milli: int) -> bool:
        """Charge ``milli`` if it fits in what remains; nothing is charged otherwise."""
        if self.spent + milli > self.limit:
            return False
        self.spent += milli
        self.unsaved_milli += milli
        return True

    def give(self, milli: int) -> None:
        """Return a charge whose service was never delivered."""
        self.spent -= milli
        self.unsaved_milli -= milli

    def delivered(self, messages: int) -> None:
        """Count delivered ``data`` messages (charged, if at all, by :meth:`take`)."""
        self.messages += messages
        self.unsaved_messages += messages

    def harvest(self) -> tuple[int, int]:
        """The unsaved milli-credits and messages, now marked saved."""
        taken = (self.unsaved_milli, self.unsaved_messages)
        self.unsaved_milli = self.unsaved_messages = 0
        return taken

    def restart(self, spent: int = 0, messages: int = 0) -> None:
        """Start a new month (its unsaved usage must have been harvested first)."""
        self.spent, self.messages = spent, messages
