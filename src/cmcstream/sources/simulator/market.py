"""A seeded market: price history and live trade prints for a :class:`Universe`.

The simulator produces raw events only (:mod:`cmcstream.engine.events`); the
engine computes every number a client sees from them, exactly as it would
from an exchange feed.

The price model:

* Free-floating assets follow geometric Brownian motion without drift in log
  space, with the asset's annualised volatility σ. Returns load on one shared
  market factor (correlation ρ with it: 0.75 for the real assets, 0.5 for the
  generated tail), so the market moves together the way crypto does. Every
  increment is scaled by √dt, so any step size is statistically right.
* Pegged assets (stablecoins) follow an Ornstein–Uhlenbeck process in log
  deviation from the peg, with a one-day mean-reversion time and the asset's σ
  as the noise: the price stays within a few basis points of the peg.
* History is generated backwards from the universe's current price, so the
  price at the moment of the backfill is the one in the universe, and only at
  the resolutions the engine keeps: 5-minute bars for 25 h, hourly bars for
  8⅓ days, daily bars for 400 days. Coarser series reuse the finer path where
  they overlap, so the three series describe one path.
* The history of an asset with public reference prices (:attr:`Asset.anchors`,
  and its first known price when that falls in the history) passes through
  them: each point is moved to the bar close the engine reads for a reference
  at that time, and the free path is bent into a Brownian bridge between the
  points (its value at each point moved there, and each stretch between two
  points by the straight line joining those moves). A bridge keeps the
  volatility of the free path bar by bar, so the history moves like the live
  path; only where the points sit far apart in price does it gain a drift.
* Volume per bar or print is the asset's 24 h volume pro rata, times noise
  with mean 1.

Cost: the history draws its normal increments from a seeded pool of standard
normals, at a random offset, stride and sign per series, so a backfill of
5,000 assets runs in C-level list operations rather than one Python call per
draw. Live steps draw fresh normals: the top assets every step, the tail every
third step (15 s at the default 5 s step).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping
from itertools import accumulate, repeat
from operator import add, mul

from cmcstream.engine.events import (
    MarketEvent,
    PriceSeries,
    SupplyChanged,
    Trade,
)
from cmcstream.engine.units import DAY_MS, HOUR_MS, MINUTE_MS
from cmcstream.sources.simulator.universe import Asset, Universe

__all__ = ["MarketSimulator"]

YEAR_MS = 365.25 * DAY_MS

FINE_BARS = 300  # 25 h of 5-minute bars
HOURLY_BARS = 200  # 8 d 8 h of hourly bars
DAILY_BARS = 400  # 400 days of daily bars

_PEG_REVERSION_PER_YEAR = 365.25  # a deviation from the peg halves in about 17 hours
_POOL_SIZE = 1 << 16
_VOLUME_NOISE_SIGMA = 0.35  # of the log of a bar's volume


class _Path:
    """How one asset's log price moves: the parameters of its increments."""

    __slots__ = ("factor", "own", "peg", "sigma")

    def __init__(self, asset: Asset) -> None:
        self.sigma = asset.volatility
        self.peg = asset.peg
        if asset.peg is not None:
            rho = 0.0
        elif asset.volatility < 0.3:
            rho = 0.2  # gold and exchange tokens barely follow the market
        else:
            rho = 0.5 if asset.generated else 0.75
        self.factor = rho
        self.own = math.sqrt(1.0 - rho * rho)


class MarketSimulator:
    """Raw market events for a universe: a history backfill, then live steps.

    The same seed and the same calls give the same events.

    Args:
        universe: the assets to simulate.
        seed: seed of every random draw.
        step_ms: expected interval between :meth:`step` calls (ms of simulated
            time); the tail is stepped every third interval.
        fast_rank_max: assets up to this rank are stepped at every call.

    Raises:
        ValueError: when ``step_ms`` is not positive.
    """

    def __init__(
        self,
        universe: Universe,
        *,
        seed: int = 0,
        step_ms: int = 5000,
        fast_rank_max: int = 500,
    ) -> None:
        if step_ms <= 0:
            raise ValueError("step_ms must be positive")
        self._universe = universe
        self._rng = random.Random(seed)
        self._slow_step_ms = 3 * step_ms
        assets = universe.assets
        self._assets = assets
        self._paths = [_Path(a) for a in assets]
        self._fast = [i for i, a in enumerate(assets) if a.rank <= fast_rank_max]
        self._slow = [i for i, a in enumerate(assets) if a.rank > fast_rank_max]
        self._growing = [i for i, a in enumerate(assets) if a.supply_growth > 0.0]
        self._volume_per_ms = [a.volume_24h / DAY_MS for a in assets]
        self._reset_state()
        self._last_ms: int | None = None
        self._last_slow_ms = 0
        self._last_supply_ms = 0
        self._factor_since_slow = 0.0

    def _reset_state(self) -> None:
        assets = self._assets
        # Pegged assets keep their log deviation from the peg; others their log price.
        self._x = [
            math.log(a.price / a.peg) if a.peg is not None else math.log(a.price) for a in assets
        ]
        self._circulating = [a.circulating_supply for a in assets]
        self._total = [a.total_supply for a in assets]

    @property
    def universe(self) -> Universe:
        """The simulated universe."""
        return self._universe

    # -- history -----------------------------------------------------------

    def backfill(
        self, now_ms: int, prices: Mapping[int, float] | None = None
    ) -> Iterator[MarketEvent]:
        """Listings and history up to ``now_ms``, and the live state from there.

        Yields an :class:`AssetListed` for every asset, then per asset a daily,
        an hourly and a 5-minute :class:`PriceSeries` (coarse first) aligned to
        UTC boundaries and ending at the last boundary at or before ``now_ms``,
        then a :class:`Trade` at ``now_ms`` for the bar in progress. The last
        price equals the universe's. History starts no earlier than an asset's
        launch.

        Resets the live state: the next :meth:`step` continues from ``now_ms``.

        Args:
            now_ms: the end of the history (epoch ms).

        Returns:
            The events, generated lazily (a series at a time).
        """
        history_seed = self._rng.getrandbits(64)
        self._reset_state()
        self._last_ms = now_ms
        self._last_slow_ms = now_ms
        self._last_supply_ms = now_ms
        self._factor_since_slow = 0.0
        return self._history(now_ms, history_seed)

    def _history(self, now_ms: int, seed: int) -> Iterator[MarketEvent]:
        for a in self._assets:
            yield a.listing()
        rng = random.Random(seed)
        gauss = rng.gauss
        pool = [gauss(0.0, 1.0) for _ in range(_POOL_SIZE)]
        s = _VOLUME_NOISE_SIGMA
        noise = [math.exp(s * gauss(0.0, 1.0) - s * s / 2.0) for _ in range(4096)]
        grids = (
            (5 * MINUTE_MS, FINE_BARS),
            (HOUR_MS, HOURLY_BARS),
            (DAY_MS, DAILY_BARS),
        )
        # The market factor is one path shared by every asset, per resolution.
        factor = [[gauss(0.0, 1.0) for _ in range(n)] for _, n in grids]
        factor_now = gauss(0.0, 1.0)
        for i in range(len(self._assets)):
            yield from self._asset_history(i, now_ms, grids, factor, factor_now, pool, noise, rng)

    def _asset_history(
        self,
        i: int,
        now_ms: int,
        grids: tuple[tuple[int, int], ...],
        factor: list[list[float]],
        factor_now: float,
        pool: list[float],
        noise: list[float],
        rng: random.Random,
    ) -> Iterator[MarketEvent]:
        a = self._assets[i]
        path = self._paths[i]
        fine_ms = grids[0][0]
        fine_end = now_ms - now_ms % fine_ms
        x_now = self._x[i]
        # Back from now to the last 5-minute boundary (the bar in progress).
        lead = now_ms - fine_end
        x_end = x_now
        if lead > 0:
            shock = rng.gauss(0.0, 1.0)
            x_end = self._walk(path, x_now, lead, [factor_now], [shock], 1)[1]
        # Each grid's path runs backwards from its newest close; where a coarser
        # grid overlaps a finer one it takes the finer path's values.
        paths: list[list[float]] = []
        ends: list[int] = []
        prev_path: list[float] | None = None
        prev_res = 0
        prev_end = 0
        for g, (res, n) in enumerate(grids):
            end = now_ms - now_ms % res
            if prev_path is None:
                head = [x_end]
            else:
                head = prev_path[(prev_end - end) // prev_res :: res // prev_res][:n]
            more = n - len(head)
            if more > 0:
                stride = rng.randrange(1, 4)
                start = rng.randrange(_POOL_SIZE - more * stride)
                own = pool[start : start + more * stride : stride]
                sign = -1.0 if rng.random() < 0.5 else 1.0
                walked = self._walk(path, head[-1], res, factor[g][:more], own, more, sign)
                head = head + walked[1:]
            paths.append(head)
            ends.append(end)
            prev_path, prev_res, prev_end = head, res, end
        daily_res, daily_n = grids[-1]
        oldest = ends[-1] - (daily_n - 2) * daily_res
        if path.peg is None and (a.anchors or a.launch_ts >= oldest):
            pins = self._pins(a, now_ms, grids, ends, paths)
            if len(pins) > 1:
                self._bridge(pins, grids, ends, paths)
        volume_per_ms = self._volume_per_ms[i]
        for g in (2, 1, 0):  # coarse first, so the finest data wins where they overlap
            res, n = grids[g]
            end = ends[g]
            count = min(n, (end - a.launch_ts) // res)
            if count <= 0:
                continue
            xs = paths[g][count - 1 :: -1]
            closes = list(map(math.exp, xs))
            if path.peg is not None:
                closes = list(map(mul, repeat(path.peg), closes))
            off = rng.randrange(len(noise) - count)
            volumes = list(map(mul, repeat(volume_per_ms * res), noise[off : off + count]))
            yield PriceSeries(
                cid=a.cid,
                resolution_ms=res,
                start_ts=end - count * res,
                closes=closes,
                volumes_usd=volumes,
            )
        # The print at now carries the bar in progress and makes the last price
        # exactly the universe's.
        yield Trade(
            cid=a.cid,
            ts=now_ms,
            price=a.price,
            volume_usd=volume_per_ms * lead * noise[rng.randrange(len(noise))],
        )

    @staticmethod
    def _pins(
        a: Asset,
        now_ms: int,
        grids: tuple[tuple[int, int], ...],
        ends: list[int],
        paths: list[list[float]],
    ) -> list[tuple[int, float]]:
        """Where the history must pass, newest first: ``(time, log price − free path)``.

        The first pin is now, where the free path already is the price. A
        reference point moves to the close the engine reads for a reference at
        that time: the last close at or before it, in the finest series whose
        tier reaches back to it (a tier holds one close fewer than its series).
        Points at or after now, or before the history, are left out.
        """
        points = list(a.anchors)
        if a.launch_price > 0.0:
            points.append((a.launch_ts, a.launch_price))
        found: dict[int, float] = {}
        for t, price in points:
            if t >= now_ms:
                continue
            for (res, n), end, xs in zip(grids, ends, paths, strict=True):
                j = (end - t // res * res) // res
                if j <= n - 2:
                    tau = end - j * res
                    if tau < now_ms and tau not in found:
                        found[tau] = math.log(price) - xs[j]
                    break
        return [(now_ms, 0.0), *sorted(found.items(), reverse=True)]

    @staticmethod
    def _bridge(
        pins: list[tuple[int, float]],
        grids: tuple[tuple[int, int], ...],
        ends: list[int],
        paths: list[list[float]],
    ) -> None:
        """Move each path by the pins' offsets, linearly in time between two pins."""
        for (res, n), end, xs in zip(grids, ends, paths, strict=True):
            # Sample j sits at end − j·res; walk the stretches between pins, newest first.
            j = 0
            for (t0, d0), (t1, d1) in itertools.pairwise(pins):
                j_end = min(n, (end - t1) // res + 1)  # first sample older than t1
                if j_end <= j:
                    continue
                slope = (d1 - d0) / (t0 - t1)  # per ms, going back in time
                first = d0 + slope * (t0 - (end - j * res))
                shifts = accumulate(repeat(slope * res, j_end - j - 1), initial=first)
                xs[j:j_end] = list(map(add, xs[j:j_end], shifts))
                j = j_end
            if j < n:
                last = pins[-1][1]
                xs[j:] = list(map(add, xs[j:], repeat(last)))

    @staticmethod
    def _walk(
        path: _Path,
        x0: float,
        dt_ms: float,
        factor: list[float],
        own: list[float],
        n: int,
        sign: float = 1.0,
    ) -> list[float]:
        """``x0`` and ``n`` further values, each ``dt_ms`` away (either direction in time).

        ``factor`` and ``own`` are standard normals for the market and the asset's
        own shocks; ``sign`` flips the own shocks, so one pool serves more paths.
        """
        if path.peg is not None:
            theta_dt = _PEG_REVERSION_PER_YEAR * dt_ms / YEAR_MS
            keep = math.exp(-theta_dt)
            spread = (
                path.sigma / math.sqrt(2.0 * _PEG_REVERSION_PER_YEAR) * math.sqrt(1.0 - keep * keep)
            )
            shocks = [sign * spread * z for z in own[:n]]
            # The stationary Ornstein–Uhlenbeck process is reversible, so the same
            # transition walks it backwards.
            return list(accumulate(shocks, lambda x, e: x * keep + e, initial=x0))
        scale = path.sigma * math.sqrt(dt_ms / YEAR_MS)
        steps = map(
            add,
            map(mul, repeat(scale * path.factor), factor[:n]),
            map(mul, repeat(sign * scale * path.own), own[:n]),
        )
        return list(accumulate(steps, initial=x0))

    # -- live --------------------------------------------------------------

    def step(self, now_ms: int, prices: Mapping[int, float] | None = None) -> Iterator[MarketEvent]:
        """Trade prints (and supply changes) from the previous step up to ``now_ms``.

        Every asset up to ``fast_rank_max`` prints at every call; the others
        when a boundary of three step intervals was crossed. Supply moves for
        growing assets are published once per simulated hour. A call at or
        before the previous one yields nothing; the first call without a
        :meth:`backfill` only starts the clock.

        Args:
            now_ms: the current simulated time (epoch ms).

        Returns:
            The events, all computed before the first is returned.
        """
        last = self._last_ms
        if last is None:
            self._last_ms = self._last_slow_ms = self._last_supply_ms = now_ms
            return iter(())
        dt = now_ms - last
        if dt <= 0:
            return iter(())
        rng = self._rng
        f = rng.gauss(0.0, 1.0) * math.sqrt(dt / YEAR_MS)
        self._factor_since_slow += f
        self._last_ms = now_ms
        events: list[MarketEvent] = []
        self._print(events, self._fast, now_ms, dt, f)
        slow_ms = self._slow_step_ms
        if now_ms // slow_ms > self._last_slow_ms // slow_ms:
            self._print(
                events, self._slow, now_ms, now_ms - self._last_slow_ms, self._factor_since_slow
            )
            self._last_slow_ms = now_ms
            self._factor_since_slow = 0.0
        if now_ms // HOUR_MS > self._last_supply_ms // HOUR_MS:
            self._grow_supply(events, now_ms, now_ms - self._last_supply_ms)
            self._last_supply_ms = now_ms
        return iter(events)

    def _print(
        self, out: list[MarketEvent], group: list[int], now_ms: int, dt: int, factor: float
    ) -> None:
        gauss = self._rng.gauss
        expo = self._rng.expovariate
        sqrt_dt = math.sqrt(dt / YEAR_MS)
        paths, xs = self._paths, self._x
        volume_per_ms, assets = self._volume_per_ms, self._assets
        for i in group:
            path = paths[i]
            if path.peg is None:
                x = xs[i] + path.sigma * (
                    path.factor * factor + path.own * sqrt_dt * gauss(0.0, 1.0)
                )
                price = math.exp(x)
            else:
                keep = math.exp(-_PEG_REVERSION_PER_YEAR * dt / YEAR_MS)
                spread = path.sigma / math.sqrt(2.0 * _PEG_REVERSION_PER_YEAR)
                x = xs[i] * keep + spread * math.sqrt(1.0 - keep * keep) * gauss(0.0, 1.0)
                price = path.peg * math.exp(x)
            xs[i] = x
            out.append(Trade(assets[i].cid, now_ms, price, volume_per_ms[i] * dt * expo(1.0)))

    def _grow_supply(self, out: list[MarketEvent], now_ms: int, dt: int) -> None:
        years = dt / YEAR_MS
        for i in self._growing:
            a = self._assets[i]
            before = self._circulating[i]
            if before is None:
                continue  # an unknown supply stays unknown
            after = before * (1.0 + a.supply_growth) ** years
            if a.max_supply is not None:
                after = min(after, a.max_supply)
            if after <= before:
                continue
            self._circulating[i] = after
            total = self._total[i]
            if total is not None and total < after:
                total = after
                self._total[i] = total
            out.append(SupplyChanged(a.cid, now_ms, after, total))
