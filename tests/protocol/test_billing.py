"""Credits in exact milli-credits: meters, accounts, parsing and printing (§7, Q2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cmcstream.protocol.billing import (
    Account,
    BillingModel,
    PerMessage,
    PerSubscription,
    format_credits,
    make_meter,
    to_milli,
)


def test_meters_price_in_milli_credits() -> None:
    assert PerSubscription().for_subscriptions(3) == 300
    assert PerSubscription().rate == 100
    assert PerSubscription().model is BillingModel.PER_SUBSCRIPTION
    assert PerMessage().for_subscriptions(4) == 0
    assert PerMessage().rate == 25
    assert PerMessage().model is BillingModel.PER_MESSAGE
    assert make_meter("per_message") == PerMessage()
    assert make_meter(BillingModel.PER_SUBSCRIPTION, 2.0) == PerSubscription(2000)
    assert make_meter(BillingModel.PER_SUBSCRIPTION) == PerSubscription()
    assert make_meter("per_message", "0.001") == PerMessage(1)
    with pytest.raises(ValueError, match="bogus"):
        make_meter("bogus")
    with pytest.raises(ValueError, match="positive"):
        make_meter("per_message", 0)
    with pytest.raises(ValueError, match=r"multiple of 0\.001"):
        make_meter("per_message", 0.0001)


def test_fifty_subscriptions_cost_exactly_five_credits() -> None:
    # 0.1 added fifty times as floats is 4.999…, which let a 51st subscription through.
    account = Account(to_milli(5))
    meter = PerSubscription()
    assert all(account.take(meter.for_subscriptions(1)) for _ in range(50))
    assert account.spent == 5000
    assert account.remaining == 0
    assert not account.take(meter.for_subscriptions(1))
    assert account.spent == 5000


def test_a_charge_is_all_or_nothing_and_refunds_return_it() -> None:
    account = Account(1000, spent=950)
    assert not account.take(100)
    assert account.spent == 950
    assert account.take(50)
    assert account.remaining == 0
    account.give(25)
    assert account.remaining == 25
    account.delivered(3)
    assert account.harvest() == (25, 3)
    assert account.harvest() == (0, 0)
    account.restart()
    assert (account.spent, account.messages) == (0, 0)
    assert Account(10, spent=20).remaining == 0


@pytest.mark.parametrize(
    ("credits", "milli"),
    [
        (5, 5000),
        (0.1, 100),
        ("0.025", 25),
        (Decimal("12.5"), 12500),
        (0, 0),
        (450_000, 450_000_000),
    ],
)
def test_to_milli_is_exact(credits: float | str | Decimal, milli: int) -> None:
    assert to_milli(credits) == milli


@pytest.mark.parametrize("credits", [-1, 0.0001, "x", float("nan")])
def test_to_milli_refuses_what_is_not_whole_milli_credits(credits: float | str) -> None:
    with pytest.raises(ValueError, match="credits"):
        to_milli(credits)


def test_format_credits_prints_exact_decimals() -> None:
    assert format_credits(12500) == "12.5"
    assert format_credits(5000) == "5"
    assert format_credits(25) == "0.025"
    assert format_credits(450_000_000) == "450,000"
