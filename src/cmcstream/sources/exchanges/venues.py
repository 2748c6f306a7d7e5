"""One price from many venues: per-venue VWAP, outlier rejection, silent venues dropped.

Pure arithmetic on trades already converted to USD; no exchange client and no
clock of its own (every call says what time it is), so it is tested without
sockets or sleeps.

The rule, per asset, at each print:

1. A venue counts while its last trade is at most ``stale_ms`` old. A venue
   that went silent stops moving the price (its last trade would otherwise pin
   it) until it trades again.
2. Each live venue's price is the VWAP of its trades in the last ``window_ms``
   (or its last trade, when none is that recent).
3. The reference is the median of the live venues' prices. With only two
   venues the median cannot tell which one is wrong, so the reference is then
   the last published price, when there is one.
4. A venue further than ``max_deviation`` (a fraction) from the reference is an
   outlier and left out. If that leaves nothing, every live venue counts: a
   market that really moved everywhere at once must not go dark.
5. The price is the volume-weighted mean of the remaining venues' prices,
   weighted by their USD volume in the window; the print's volume is the USD
   volume those venues traded since the previous print.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median

from cmcstream.engine.events import Trade

__all__ = ["VenueBook", "VenueRules"]


@dataclass(frozen=True, slots=True)
class VenueRules:
    """How venues are combined (see the module's rule)."""

    window_ms: int = 60_000
    stale_ms: int = 120_000
    max_deviation: float = 0.05

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.stale_ms <= 0:
            raise ValueError("the VWAP window and the stale limit must be positive")
        if not 0 < self.max_deviation < 1:
            raise ValueError("max_deviation is a fraction between 0 and 1")


@dataclass(slots=True)
class _Venue:
    trades: deque[tuple[int, float, float]] = field(default_factory=deque)  # (ts, price, usd)
    usd: float = 0.0  # running sums over ``trades``: a print costs the trades that left only
    price_usd: float = 0.0
    last_ts: int = 0
    last_price: float = 0.0
    unprinted_usd: float = 0.0

    def add(self, ts: int, price: float, usd: float) -> None:
        self.trades.append((ts, price, usd))
        self.usd += usd
        self.price_usd += price * usd
        self.last_ts = max(self.last_ts, ts)
        self.last_price = price
        self.unprinted_usd += usd

    def price(self, since_ms: int) -> tuple[float, float]:
        """(VWAP, USD volume) over the trades since ``since_ms``; the last trade when none."""
        trades = self.trades
        while trades and trades[0][0] < since_ms:
            _, price, usd = trades.popleft()
            self.usd -= usd
            self.price_usd -= price * usd
        if not trades:
            self.usd = self.price_usd = 0.0  # no rounding left behind by the subtractions
        if self.usd <= 0:
            return self.last_price, 0.0
        return self.price_usd / self.usd, self.usd


@dataclass(slots=True)
class _Asset:
    venues: dict[str, _Venue] = field(default_factory=dict)
    published: float | None = None
    dirty: bool = False


class VenueBook:
    """Trades from every venue in, one :class:`Trade` print per asset out."""

    def __init__(self, rules: VenueRules | None = None) -> None:
        self.rules = rules if rules is not None else VenueRules()
        self._assets: dict[int, _Asset] = {}
        self.rejected = 0  # venue prices left out as outliers, for /health and tests

    def add(self, venue: str, cid: int, ts_ms: int, price_usd: float, volume_usd: float) -> None:
        """One trade of ``cid`` on ``venue`` at ``ts_ms``; non-positive prices are ignored."""
        if not price_usd > 0 or not volume_usd >= 0:
            return
        asset = self._assets.get(cid)
        if asset is None:
            asset = self._assets[cid] = _Asset()
        v = asset.venues.get(venue)
        if v is None:
            v = asset.venues[venue] = _Venue()
        v.add(ts_ms, price_usd, volume_usd)
        asset.dirty = True

    def live_venues(self, cid: int, now_ms: int) -> list[str]:
        """The venues of ``cid`` that traded within the stale limit, by name."""
        asset = self._assets.get(cid)
        if asset is None:
            return []
        cutoff = now_ms - self.rules.stale_ms
        return sorted(name for name, v in asset.venues.items() if v.last_ts >= cutoff)

    def prints(self, now_ms: int) -> list[Trade]:
        """A print for every asset that traded since the previous call, stamped ``now_ms``."""
        out = []
        for cid, asset in self._assets.items():
            if not asset.dirty:
                continue
            asset.dirty = False
            trade = self._print(cid, asset, now_ms)
            if trade is not None:
                out.append(trade)
        return out

    def _print(self, cid: int, asset: _Asset, now_ms: int) -> Trade | None:
        rules = self.rules
        stale_before = now_ms - rules.stale_ms
        since = now_ms - rules.window_ms
        quotes = [(v, *v.price(since)) for v in asset.venues.values() if v.last_ts >= stale_before]
        if not quotes:
            return None
        if len(quotes) == 2 and asset.published is not None:
            reference = asset.published
        else:
            reference = median(q[1] for q in quotes)
        kept = [q for q in quotes if abs(q[1] / reference - 1) <= rules.max_deviation]
        self.rejected += len(quotes) - len(kept)
        if not kept:
            kept = quotes
        weight = sum(q[2] for q in kept)
        if weight > 0:
            price = sum(q[1] * q[2] for q in kept) / weight
        else:
            price = median(q[1] for q in kept)
        volume = 0.0
        for v, _, _ in kept:
            volume += v.unprinted_usd
        for v in asset.venues.values():
            v.unprinted_usd = 0.0  # an outlier's volume is not counted later either
        asset.published = price
        return Trade(cid=cid, ts=now_ms, price=price, volume_usd=volume)
