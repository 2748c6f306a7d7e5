"""The market engine: CEX prices in, ``market@crypto_latest_price`` payloads out.

The engine is a pure reducer. :meth:`MarketEngine.apply` folds raw
:mod:`~cmcstream.engine.events` into per-asset state; :meth:`MarketEngine.tick`
and :meth:`MarketEngine.latest_price` read payloads out of it at a time the
caller names. Nothing here reads a clock or does I/O.

State per asset, and why it is shaped this way:

* **Price history in three tiers** of closes, each a fixed ring of doubles
  (``array('d')``) indexed by ``bucket index mod ring size``: 5-minute closes
  for the last 25 h, hourly closes for the last 8⅓ days, daily closes for the
  last 400 days. That is every reference the payload needs (24 h … 1 year, the
  start of the year) at the resolution it deserves, in about 7 KB per asset.
  The close of a bucket is the last price before the bucket ends; a bucket with
  no trade carries the previous close forward. A reference price at time ``T``
  is the last close at or before ``T`` in the finest tier that reaches back to
  ``T`` (the live price when ``T`` is in the bucket in progress). It is not
  interpolated between closes: a straight line between two closes would move
  the reference by a fraction of a bar per push, so every change field would
  look far calmer than the price it is computed from. Read as a step, the
  reference keeps the path's volatility: over any stretch of pushes its moves
  add up to the variance of the price path at that tier's resolution.
* **24 h volume** as 288 five-minute buckets in a ring with a running sum: a
  trade adds to one bucket, time passing zeroes the buckets that fall out, so
  the cost per trade is O(1) and nothing is ever rescanned per push. The window
  is bucket-aligned: it holds the current bucket and the 287 before it (between
  23 h 55 min and 24 h of trading).
* **Supply** as current values plus a short log of fully-diluted-supply changes,
  enough to know the fully diluted valuation 24 h ago. An asset listed with an
  unknown circulating supply has no ``cs``, ``mc`` or ``fdv24h``. ``cs`` is
  sent in whole coins, as the documentation shows it, and ``mc`` is ``p × cs``.

A number whose reference is missing (history too short, unknown launch price)
comes out as ``None``; the engine never makes one up.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from cmcstream.engine.events import (
    AssetListed,
    MarketEvent,
    PriceSeries,
    SupplyChanged,
    Trade,
)
from cmcstream.engine.units import DAY_MS, HOUR_MS, MINUTE_MS
from cmcstream.protocol.payloads import CryptoLatestPrice

__all__ = ["MarketEngine"]


FINE_MS = 5 * MINUTE_MS
FINE_SLOTS = 300  # 25 h: the 24 h reference plus a margin for late ticks
HOURLY_SLOTS = 200  # 8 d 8 h: the 7 d reference plus a margin
DAILY_SLOTS = 400  # the 1 y and year-to-date references plus a margin

VOLUME_BUCKET_MS = 5 * MINUTE_MS
VOLUME_BUCKETS = 288  # 24 h of 5-minute buckets

# The 24 h fully-diluted-supply reference only ever looks this far back.
_SUPPLY_LOG_SPAN_MS = DAY_MS + HOUR_MS


class _Tier:
    """Closes of one resolution in a ring.

    ``head`` is the bucket in progress (its close is not written until the
    bucket ends); complete buckets are ``lo .. head-1``. ``lo == head`` means
    no complete bucket yet; ``head == -1`` means the tier was never started.
    """

    __slots__ = ("closes", "head", "lo", "res", "size")

    def __init__(self, res: int, size: int) -> None:
        self.res = res
        self.size = size
        self.closes = array("d", bytes(8 * size))
        self.head = -1
        self.lo = -1

    def roll(self, k: int, carry: float | None) -> None:
        """Move the bucket in progress forward to ``k``, closing the ones passed at ``carry``."""
        if carry is None or self.head < 0:
            self.head = self.lo = k
            return
        head, size, closes = self.head, self.size, self.closes
        if k - head >= size:
            closes[0:size] = array("d", [carry]) * size
        else:
            for b in range(head, k):
                closes[b % size] = carry
        self.head = k
        if self.lo < k - size + 1:
            self.lo = k - size + 1

    def reset(self, k: int) -> None:
        """Forget every close and start again with bucket ``k`` in progress."""
        self.head = self.lo = k


class _Asset:
    """Everything the engine keeps about one asset."""

    __slots__ = (
        "cid",
        "circulating",
        "daily",
        "fdv_base",
        "fdv_log",
        "fdv_supply",
        "fine",
        "hourly",
        "last_price",
        "last_ts",
        "launch_price",
        "launch_ts",
        "max_supply",
        "name",
        "rank",
        "symbol",
        "tiers",
        "total_supply",
        "vol",
        "vol_head",
        "vol_since",
        "vol_sum",
    )

    def __init__(self, ev: AssetListed) -> None:
        self.cid = ev.cid
        self.fine = _Tier(FINE_MS, FINE_SLOTS)
        self.hourly = _Tier(HOUR_MS, HOURLY_SLOTS)
        self.daily = _Tier(DAY_MS, DAILY_SLOTS)
        self.tiers = (self.fine, self.hourly, self.daily)
        self.last_price: float | None = None
        self.last_ts: int | None = None
        self.vol = array("d", bytes(8 * VOLUME_BUCKETS))
        self.vol_head = -1
        self.vol_sum = 0.0
        self.vol_since: int | None = None
        self.relist(ev)

    def relist(self, ev: AssetListed) -> None:
        self.symbol = ev.symbol
        self.name = ev.name
        self.rank = ev.rank
        self.circulating = ev.circulating_supply
        self.max_supply = ev.max_supply
        self.total_supply = ev.total_supply
        self.launch_ts = ev.launch_ts
        self.launch_price = ev.launch_price
        self.fdv_supply = self.diluted_supply()
        self.fdv_base = self.fdv_supply
        self.fdv_log: list[tuple[int, float]] | None = None

    def diluted_supply(self) -> float | None:
        """Coins counted by the fully diluted valuation: max, else total, else circulating."""
        if self.circulating is None:
            return None  # an unknown supply makes any valuation unknown
        if self.max_supply is not None and self.max_supply > 0:
            return self.max_supply
        if self.total_supply is not None and self.total_supply > 0:
            return self.total_supply
        return self.circulating

    def diluted_supply_at(self, ts: int) -> float | None:
        log = self.fdv_log
        if not log:
            return self.fdv_supply
        for changed_at, supply in reversed(log):
            if changed_at <= ts:
                return supply
        return self.fdv_base


def _pct(p: float, ref: float | None) -> float | None:
    if ref is None or ref <= 0.0:
        return None
    return (p - ref) / ref * 100.0


def _ring_write(ring: array[float], slot: int, values: Sequence[float]) -> None:
    """Write ``values`` into ``ring`` from ``slot`` on, wrapping at the end."""
    m = len(values)
    first = min(m, len(ring) - slot)
    ring[slot : slot + first] = array("d", values[:first])
    if m > first:
        ring[0 : m - first] = array("d", values[first:])


def _interpolate(closes: Sequence[float], e0: int, r: int, t: int) -> float:
    """Price at ``t`` on a series whose close ``i`` is sampled at ``e0 + i·r``."""
    i, rem = divmod(t - e0, r)
    if i >= len(closes) - 1:
        return closes[-1]
    if rem == 0:
        return closes[i]
    a = closes[i]
    return a + (closes[i + 1] - a) * (rem / r)


class MarketEngine:
    """Market state for ``market@crypto_latest_price``, computed from raw events.

    Args:
        fast_cadence_ms: push interval of fast assets, and the interval at which
            :meth:`tick` is expected to be called (ms of simulated time).
        slow_cadence_ms: push interval of the other assets (ms).
        fast_rank_max: assets with a rank up to this one are fast.

    Raises:
        ValueError: when a cadence is not positive or the slow cadence is
            shorter than the fast one.
    """

    def __init__(
        self,
        *,
        fast_cadence_ms: int = 5000,
        slow_cadence_ms: int = 15000,
        fast_rank_max: int = 500,
    ) -> None:
        if fast_cadence_ms <= 0 or slow_cadence_ms <= 0:
            raise ValueError("cadences must be positive")
        if slow_cadence_ms < fast_cadence_ms:
            raise ValueError("the slow cadence cannot be shorter than the fast one")
        self._fast_ms = fast_cadence_ms
        self._slow_ms = slow_cadence_ms
        self._fast_rank_max = fast_rank_max
        self._assets: dict[int, _Asset] = {}
        self._last_tick_ms: int | None = None
        self._last_slow_ms: int | None = None
        self._ytd_lo = 0
        self._ytd_hi = -1
        self._n_trades = 0
        self._n_late_trades = 0
        self._n_series = 0
        self._n_supply_changes = 0
        self._n_unknown = 0
        self._n_ticks = 0
        self._n_payloads = 0

    # -- events ------------------------------------------------------------

    def apply(self, event: MarketEvent) -> None:
        """Fold one raw event into the state.

        Events for an asset that was never listed are counted and ignored. A
        trade older than the newest price known for its asset still counts
        toward the volume window but does not move the price.

        Args:
            event: any :data:`~cmcstream.engine.events.MarketEvent`.
        """
        # Trades are nearly every event, so they are tested first.
        if isinstance(event, Trade):
            self._apply_trade(event)
        elif isinstance(event, PriceSeries):
            self._apply_series(event)
        elif isinstance(event, AssetListed):
            st = self._assets.get(event.cid)
            if st is None:
                self._assets[event.cid] = _Asset(event)
            else:
                st.relist(event)
        elif isinstance(event, SupplyChanged):
            self._apply_supply(event)
        else:  # pragma: no cover - the union is closed; this guards misuse at runtime
            raise TypeError(f"not a market event: {type(event).__name__}")

    def _apply_trade(self, ev: Trade) -> None:
        st = self._assets.get(ev.cid)
        if st is None:
            self._n_unknown += 1
            return
        self._n_trades += 1
        ts = ev.ts
        self._add_volume(st, ts, ev.volume_usd)
        last_ts = st.last_ts
        if last_ts is None:
            for tier in st.tiers:
                tier.roll(ts // tier.res, None)
        elif ts < last_ts:
            self._n_late_trades += 1
            return
        elif ts // FINE_MS != st.fine.head:
            # Tiers are aligned, so an hour or a day can only end where a 5-minute bucket does.
            carry = st.last_price
            for tier in st.tiers:
                k = ts // tier.res
                if k != tier.head:
                    tier.roll(k, carry)
        st.last_price = ev.price
        st.last_ts = ts

    def _apply_supply(self, ev: SupplyChanged) -> None:
        st = self._assets.get(ev.cid)
        if st is None:
            self._n_unknown += 1
            return
        self._n_supply_changes += 1
        st.circulating = ev.circulating_supply
        if ev.total_supply is not None:
            st.total_supply = ev.total_supply
        new = st.diluted_supply()
        if new is None or new == st.fdv_supply:
            return
        log = st.fdv_log
        if log is None:
            log = st.fdv_log = []
        bisect.insort(log, (ev.ts, new))
        st.fdv_supply = log[-1][1]
        cutoff = log[-1][0] - _SUPPLY_LOG_SPAN_MS
        while len(log) > 1 and log[0][0] <= cutoff:
            st.fdv_base = log.pop(0)[1]

    def _apply_series(self, ev: PriceSeries) -> None:
        st = self._assets.get(ev.cid)
        if st is None:
            self._n_unknown += 1
            return
        closes = ev.closes
        n = len(closes)
        r = ev.resolution_ms
        if n == 0 or r <= 0:
            return
        self._n_series += 1
        e_last = ev.start_ts + n * r
        last_ts = st.last_ts
        advances = last_ts is None or e_last >= last_ts
        later = last_ts is None or e_last > last_ts
        for tier in st.tiers:
            if tier.res >= r:
                self._series_into_tier(tier, closes, r, ev.start_ts, e_last, advances)
            elif later:
                # A finer tier cannot be filled from coarser bars; rather than
                # leave a gap in it, start it again at the series end and let
                # coarser tiers answer for the past.
                tier.reset(e_last // tier.res)
        if later:
            st.last_price = closes[-1]
            st.last_ts = e_last
        if len(ev.volumes_usd) == n:
            self._series_into_volume(st, ev.volumes_usd, r, ev.start_ts, e_last)

    @staticmethod
    def _series_into_tier(
        tier: _Tier,
        closes: list[float],
        r: int,
        start: int,
        e_last: int,
        advances: bool,
    ) -> None:
        res, size = tier.res, tier.size
        e0 = start + r
        b_lo = -(-e0 // res) - 1  # first bucket whose end falls on or after the first close
        b_hi = e_last // res - 1  # last bucket whose end falls on or before the last close
        if advances:
            new_head = e_last // res
            empty = tier.lo >= tier.head
            lo = b_lo if empty or tier.head < b_lo else min(tier.lo, b_lo)
            tier.head = new_head
            tier.lo = max(lo, new_head - size + 1)
            top = b_hi
        else:
            top = min(b_hi, tier.head - 1)
            # Older data is kept only where it joins what the tier already holds.
            if top < tier.lo - 1 or top < b_lo:
                return
            tier.lo = max(min(tier.lo, b_lo), tier.head - size + 1)
        first = max(b_lo, tier.lo)
        m = top - first + 1
        if m <= 0:
            return
        first_end = (first + 1) * res
        if res % r == 0 and (first_end - e0) % r == 0:
            i0 = (first_end - e0) // r
            stride = res // r
            values: Sequence[float] = closes[i0 : i0 + (m - 1) * stride + 1 : stride]
        else:
            values = [_interpolate(closes, e0, r, (b + 1) * res) for b in range(first, top + 1)]
        _ring_write(tier.closes, first % size, values)

    def _series_into_volume(
        self, st: _Asset, volumes: list[float], r: int, start: int, e_last: int
    ) -> None:
        ring = st.vol
        size = VOLUME_BUCKETS
        bucket_ms = VOLUME_BUCKET_MS
        last_b = (e_last - 1) // bucket_ms
        if st.vol_head < 0:
            st.vol_head = last_b
        elif last_b > st.vol_head:
            self._advance_volume(st, last_b)
        head = st.vol_head
        b0 = max(start // bucket_ms, head - size + 1)
        b1 = min(last_b, head)
        if b0 > b1:
            return
        # A series replaces what it covers, so trades already counted there are not doubled.
        _ring_write(ring, b0 % size, [0.0] * (b1 - b0 + 1))
        if r == bucket_ms and start % bucket_ms == 0:
            i0 = b0 - start // bucket_ms
            _ring_write(ring, b0 % size, volumes[i0 : i0 + b1 - b0 + 1])
        elif r % bucket_ms == 0 and start % bucket_ms == 0:
            # Aligned bars longer than a bucket: each spreads evenly over its buckets.
            per_bar = r // bucket_ms
            first_b = start // bucket_ms
            for i in range(max(0, (b0 - first_b) // per_bar), len(volumes)):
                lo_b = first_b + i * per_bar
                if lo_b > b1:
                    break
                s_b = max(lo_b, b0)
                e_b = min(lo_b + per_bar - 1, b1)
                _ring_write(ring, s_b % size, [volumes[i] / per_bar] * (e_b - s_b + 1))
        else:
            lo_ms, hi_ms = b0 * bucket_ms, (b1 + 1) * bucket_ms
            i_first = max(0, (lo_ms - start) // r)
            i_last = min(len(volumes) - 1, (hi_ms - 1 - start) // r)
            for i in range(i_first, i_last + 1):
                bs = start + i * r
                be = bs + r
                v = volumes[i]
                if r <= bucket_ms:
                    b = bs // bucket_ms
                    if b0 <= b <= b1:
                        ring[b % size] += v
                    continue
                # A bar longer than a bucket is spread over the buckets it overlaps.
                for b in range(max(bs // bucket_ms, b0), min((be - 1) // bucket_ms, b1) + 1):
                    overlap = min(be, (b + 1) * bucket_ms) - max(bs, b * bucket_ms)
                    ring[b % size] += v * overlap / r
        st.vol_sum = max(sum(ring), 0.0)
        if st.vol_since is None or start < st.vol_since:
            st.vol_since = start

    def _add_volume(self, st: _Asset, ts: int, v: float) -> None:
        b = ts // VOLUME_BUCKET_MS
        head = st.vol_head
        if head < 0:
            st.vol_head = b
        elif b > head:
            self._advance_volume(st, b)
        elif b <= head - VOLUME_BUCKETS:
            return  # older than the window
        if v:
            st.vol[b % VOLUME_BUCKETS] += v
            st.vol_sum += v
        # A print's volume is booked to its whole bucket, so coverage starts there.
        since = b * VOLUME_BUCKET_MS
        if st.vol_since is None or since < st.vol_since:
            st.vol_since = since

    @staticmethod
    def _advance_volume(st: _Asset, b: int) -> None:
        """Make ``b`` the newest volume bucket, dropping the buckets that leave the window."""
        head, ring, size = st.vol_head, st.vol, VOLUME_BUCKETS
        if b - head >= size:
            ring[0:size] = array("d", bytes(8 * size))
            total = 0.0
        else:
            total = st.vol_sum
            for j in range(head + 1, b + 1):
                slot = j % size
                total -= ring[slot]
                ring[slot] = 0.0
            if b // size != head // size:
                # Once per lap, re-add from scratch so subtraction error cannot accumulate.
                total = sum(ring)
        st.vol_sum = max(total, 0.0)
        st.vol_head = b

    # -- reading -----------------------------------------------------------

    def knows(self, cid: int) -> bool:
        """Whether ``cid`` was listed."""
        return cid in self._assets

    def cadence_ms(self, cid: int) -> int | None:
        """Push interval of ``cid`` in ms, or ``None`` for an unknown id."""
        st = self._assets.get(cid)
        if st is None:
            return None
        return self._fast_ms if st.rank <= self._fast_rank_max else self._slow_ms

    def latest_price(self, cid: int, now_ms: int) -> CryptoLatestPrice | None:
        """The payload of ``cid`` as of ``now_ms``.

        Args:
            cid: CoinMarketCap cryptocurrency id.
            now_ms: the time the payload describes (epoch ms); it should not go
                backwards between calls, because it also ages the volume window.

        Returns:
            The 14-field payload, or ``None`` for an unknown id or one with no
            price yet.
        """
        st = self._assets.get(cid)
        if st is None or st.last_price is None:
            return None
        return self._payload(st, now_ms)

    def tick(self, now_ms: int, interested: Collection[int]) -> list[CryptoLatestPrice]:
        """The payloads due at ``now_ms`` among ``interested``.

        Called every fast cadence, ideally on its boundaries. Fast assets are due
        at every tick; the others when a slow-cadence boundary was crossed since
        the previous tick (for the first tick: within the last fast cadence) and
        their previous push is at least one slow minus one fast cadence old.
        Unknown ids and ids without a price are skipped.

        Args:
            now_ms: tick time, epoch ms.
            interested: ids someone is subscribed to.

        Returns:
            One payload per due id, in the iteration order of ``interested``.
        """
        prev = self._last_tick_ms
        if prev is None:
            prev = now_ms - self._fast_ms
        slow_due = now_ms // self._slow_ms > prev // self._slow_ms
        last_slow = self._last_slow_ms
        if (
            slow_due
            and last_slow is not None
            and now_ms - last_slow < self._slow_ms - self._fast_ms
        ):
            # A tick loop catching up after a stall can cross two slow boundaries
            # a single fast cadence apart; one push of the same price is enough.
            slow_due = False
        if slow_due:
            self._last_slow_ms = now_ms
        if self._last_tick_ms is None or now_ms > self._last_tick_ms:
            self._last_tick_ms = now_ms
        self._n_ticks += 1
        fast_max = self._fast_rank_max
        assets = self._assets
        out: list[CryptoLatestPrice] = []
        for cid in interested:
            st = assets.get(cid)
            if st is None or st.last_price is None:
                continue
            if st.rank > fast_max and not slow_due:
                continue
            out.append(self._payload(st, now_ms))
        return out

    def statistics(self) -> dict[str, int]:
        """Counters for metrics and logs.

        Returns:
            ``assets`` listed, ``priced`` (with a price), ``trades`` applied,
            ``late_trades`` (older than the newest price), ``series`` applied,
            ``supply_changes``, ``unknown_asset_events`` (ignored), ``ticks`` and
            ``payloads`` built.
        """
        return {
            "assets": len(self._assets),
            "priced": sum(1 for st in self._assets.values() if st.last_price is not None),
            "trades": self._n_trades,
            "late_trades": self._n_late_trades,
            "series": self._n_series,
            "supply_changes": self._n_supply_changes,
            "unknown_asset_events": self._n_unknown,
            "ticks": self._n_ticks,
            "payloads": self._n_payloads,
        }

    # -- computation -------------------------------------------------------

    @staticmethod
    def _price_at(st: _Asset, t: int) -> float | None:
        """The price at ``t``: the last close at or before it, in the finest tier reaching it."""
        last_ts, last_price = st.last_ts, st.last_price
        if last_ts is None or last_price is None:
            return None
        if t >= last_ts:
            return last_price
        for tier in st.tiers:
            head, lo = tier.head, tier.lo
            if lo >= head:
                continue
            res = tier.res
            k = t // res - 1  # the last bucket that ended at or before t
            if k < lo:
                continue
            if k >= head:  # cannot happen while t < last_ts; kept so a bad state reads safely
                k = head - 1
            return tier.closes[k % tier.size]
        return None

    def _volume_24h(self, st: _Asset, now_ms: int) -> float | None:
        if st.vol_head < 0 or st.vol_since is None:
            return None
        b = now_ms // VOLUME_BUCKET_MS
        if b > st.vol_head:
            self._advance_volume(st, b)
        window_start = (st.vol_head - VOLUME_BUCKETS + 1) * VOLUME_BUCKET_MS
        # A partial window is a 24 h volume only if the asset did not trade before it.
        if st.vol_since > max(window_start, st.launch_ts):
            return None
        return st.vol_sum

    def _year_start_ms(self, now_ms: int) -> int:
        if not self._ytd_lo <= now_ms < self._ytd_hi:
            year = datetime.fromtimestamp(now_ms // 1000, tz=UTC).year
            self._ytd_lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) * 1000
            self._ytd_hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) * 1000
        return self._ytd_lo

    def _payload(self, st: _Asset, now_ms: int) -> CryptoLatestPrice:
        p = st.last_price
        assert p is not None
        self._n_payloads += 1
        price_at = self._price_at
        ref24 = price_at(st, now_ms - DAY_MS)
        p24h = _pct(p, ref24)
        fdv24h: float | None = None
        s_now = st.fdv_supply
        s_then = st.diluted_supply_at(now_ms - DAY_MS)
        if p24h is not None and ref24 is not None and s_now is not None and s_then is not None:
            if s_then == s_now:
                # Same supply: the valuation moved exactly as the price did (spec Q19).
                fdv24h = p24h
            elif s_then > 0:
                then = ref24 * s_then
                fdv24h = (p * s_now - then) / then * 100.0
        launch = st.launch_price
        cs = None if st.circulating is None else round(st.circulating)
        return CryptoLatestPrice(
            cid=st.cid,
            p=p,
            vu=self._volume_24h(st, now_ms),
            mc=None if cs is None else p * cs,
            cs=cs,
            p24h=p24h,
            p7d=_pct(p, price_at(st, now_ms - 7 * DAY_MS)),
            p30d=_pct(p, price_at(st, now_ms - 30 * DAY_MS)),
            p60d=_pct(p, price_at(st, now_ms - 60 * DAY_MS)),
            p3m=_pct(p, price_at(st, now_ms - 90 * DAY_MS)),
            p1y=_pct(p, price_at(st, now_ms - 365 * DAY_MS)),
            pytd=_pct(p, price_at(st, self._year_start_ms(now_ms))),
            pall=_pct(p, launch) if launch is not None else None,
            fdv24h=fdv24h,
        )
