"""The market's past prices of the DEX world's reference coins, for its warm-up history.

:meth:`~cmcstream.sources.simulator.dex.DexSimulator.warm_up` plays a week of
DEX trading before the server starts; the quote coins (WBNB, WETH, SOL,
stablecoins…) must be worth then what the market channel's history says they
were. :class:`ReferencePrices` reads that history off the market events the
market engine is fed (:class:`~cmcstream.engine.events.PriceSeries` and the last
:class:`~cmcstream.engine.events.Trade`), so both channels agree about the past.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from cmcstream.engine.events import MarketEvent, PriceSeries, Trade

__all__ = ["ReferencePrices"]


class ReferencePrices:
    """USD prices of some coins at any past time, from the market's history.

    Args:
        cids: the CoinMarketCap ids to keep.
    """

    def __init__(self, cids: Iterable[int]) -> None:
        self._cids = set(cids)
        # Per coin: (time, price) points, each series' bar closes, finest series last.
        self._series: dict[int, list[tuple[int, list[int], list[float]]]] = {}
        self._last: dict[int, tuple[int, float]] = {}

    def observe(self, event: MarketEvent) -> None:
        """Keep what ``event`` says about a kept coin's price history."""
        if isinstance(event, PriceSeries) and event.cid in self._cids and event.closes:
            res = event.resolution_ms
            times = [event.start_ts + (i + 1) * res for i in range(len(event.closes))]
            self._series.setdefault(event.cid, []).append((res, times, list(event.closes)))
        elif isinstance(event, Trade) and event.cid in self._cids:
            self._last[event.cid] = (event.ts, event.price)

    def at(self, t_ms: int) -> dict[int, float]:
        """Each kept coin's price at ``t_ms``: linear between the finest bar closes
        around it (the last trade after them); coins never seen are left out."""
        out: dict[int, float] = {}
        for cid in self._cids:
            price = self._price(cid, t_ms)
            if price is not None:
                out[cid] = price
        return out

    def _price(self, cid: int, t: int) -> float | None:
        series = sorted(self._series.get(cid, ()), key=lambda s: s[0])  # finest first
        last = self._last.get(cid)
        for _, times, closes in series:
            if times[0] <= t <= times[-1]:
                return _between(times, closes, t)
        if series:
            finest_times, finest_closes = series[0][1], series[0][2]
            if t > finest_times[-1]:
                if last is None or t >= last[0]:
                    return last[1] if last is not None else finest_closes[-1]
                return _between([finest_times[-1], last[0]], [finest_closes[-1], last[1]], t)
            oldest = min(series, key=lambda s: s[1][0])
            return oldest[2][0]
        return last[1] if last is not None else None


def _between(times: list[int], values: list[float], t: int) -> float:
    """The value at ``t`` on the line through the points around it (``times`` sorted)."""
    i = bisect_left(times, t)
    if times[i] == t or i == 0:
        return values[i]
    t0, t1 = times[i - 1], times[i]
    return values[i - 1] + (values[i] - values[i - 1]) * (t - t0) / (t1 - t0)
