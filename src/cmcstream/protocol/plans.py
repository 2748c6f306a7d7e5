"""Plans as data: what each CoinMarketCap API plan allows on the WebSocket.

PROTOCOL.md §7. WebSocket access starts at Startup; lower plans are refused at
connect with close 4102. Both names of the second self-serve tier are present
("Standard" on the overview, "Growth" on the marketing page, Q3). Monthly
credits follow the published self-serve figures (Startup 450,000 per S7);
Enterprise limits are contractual, so its figures here are defaults a
deployment is expected to override per key.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PLAN", "PLANS", "Plan", "get_plan"]


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan.

    Attributes:
        name: lower-case plan name, as stored with a key.
        websocket: whether the plan may open WebSocket connections at all.
        connection_limit: concurrent connections per key (the 11th gets 4004).
        subscription_limit: subscriptions per connection (``sub_limit``).
        monthly_credits: credits per calendar month (UTC).
        channels: channel names the plan may subscribe to; ``None`` for all.
    """

    name: str
    websocket: bool
    connection_limit: int
    subscription_limit: int
    monthly_credits: float
    channels: frozenset[str] | None = None


PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan("basic", False, 0, 0, 10_000),
        Plan("hobbyist", False, 0, 0, 110_000),
        Plan("startup", True, 10, 100, 450_000),
        Plan("standard", True, 10, 100, 1_200_000),
        Plan("growth", True, 10, 100, 1_200_000),
        Plan("professional", True, 10, 100, 3_000_000),
        Plan("enterprise", True, 50, 500, 30_000_000),
    )
}

DEFAULT_PLAN = "startup"


def get_plan(name: str) -> Plan:
    """The plan called ``name`` (case-insensitive).

    Raises:
        KeyError: no such plan.
    """
    return PLANS[name.lower()]
