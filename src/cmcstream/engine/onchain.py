"""The on-chain engine: raw DEX events in, the nine ``onchain@`` channels' payloads out.

:meth:`OnchainEngine.apply` folds one raw event into the state and returns the
pushes it triggers at once (``token_agg_event``, ``transaction``,
``liquidity_event``, ``holder_wallet_update``). :meth:`OnchainEngine.advance`
is called as time passes and returns what is due by then: finished candles
(``kline``) and interval counts (``unique_trader``) at interval close, and the
rolling metrics (``token_metric``, ``pool_metric``, ``holders_metrics``),
coalesced to one push per identity per ``metric_period_ms``.

Every number is computed here, from events only:

- **Pools** are constant-product pairs whose reserves follow their liquidity
  events and swaps. A token's USD price comes through the quote side of a pool:
  stablecoins and wrapped native coins are priced by the market channel (the
  ``quote_price`` callback, by CoinMarketCap id); any other token by its own
  last price.
- **A swap** is *excluded* (``ex: true``) when it is dust (under
  ``dust_usd``) or its price is an outlier (more than ``outlier_ratio`` away
  from the token's last included price); excluded swaps move reserves, as on
  chain, but no price, candle or metric.
- **Candles and unique traders** are cut from per-second buckets at interval
  close; an interval without swaps carries the previous close with zero volume
  (so consecutive candles are exactly one interval apart).
- **Rolling windows** are bucketed counters with exact sliding distinct counts
  (:mod:`cmcstream.engine.windows`).
- **Holders** live in :class:`~cmcstream.engine.holders.HolderBook`.

Only watched identities cost payload work: a push is built only for a topic
someone subscribed to (:meth:`watch`); the state behind every channel is kept
for every token and pool, so a new subscriber gets full windows at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from msgspec import UNSET, UnsetType

from cmcstream.engine.candles import LongTraders, SecondBuckets
from cmcstream.engine.events import (
    DexEvent,
    LiquidityChanged,
    NativeBalanceChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
    WalletLabeled,
)
from cmcstream.engine.holders import HolderBook
from cmcstream.engine.numeric import units
from cmcstream.engine.tokens import ReferenceToken, reference_token
from cmcstream.engine.units import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS
from cmcstream.engine.windows import RollingWindow, WindowTotals
from cmcstream.protocol.channels import Subscription, make_topic
from cmcstream.protocol.payloads import (
    Kline,
    LiquidityEvent,
    PoolMetric,
    PoolWindow,
    TokenAggEvent,
    TokenMetric,
    TokenWindow,
    Transaction,
    UniqueTrader,
)

__all__ = ["INTERVAL_MS", "OnchainEngine", "Update"]

Update = tuple[str, Any]
"""A push: its topic and its payload struct."""

INTERVAL_MS: Final[Mapping[str, int]] = {
    "1s": SECOND_MS,
    "5s": 5 * SECOND_MS,
    "30s": 30 * SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": DAY_MS,
}
_LONG_INTERVALS: Final = ("1h", "4h", "1d")

TOKEN_WINDOWS: Final = (("1m", MINUTE_MS), ("5m", 5 * MINUTE_MS), ("1h", HOUR_MS),
                        ("4h", 4 * HOUR_MS), ("24h", DAY_MS))  # fmt: skip
POOL_WINDOWS: Final = (("5m", 5 * MINUTE_MS), ("1h", HOUR_MS), ("4h", 4 * HOUR_MS),
                       ("24h", DAY_MS), ("7d", 7 * DAY_MS))  # fmt: skip

TXTP_NORMAL: Final = 0
TXTP_DUST: Final = 1  # excluded: value under the dust threshold
TXTP_OUTLIER: Final = 2  # excluded: price far from the token's market

_KLINE = "onchain@kline"
_TRADERS = "onchain@unique_trader"
_TX = "onchain@transaction"
_AGG = "onchain@token_agg_event"
_LIQ = "onchain@liquidity_event"
_TOKEN_METRIC = "onchain@token_metric"
_POOL_METRIC = "onchain@pool_metric"
_HOLDERS = "onchain@holders_metrics"
_WALLET = "onchain@holder_wallet_update"
SOLANA: Final = 16


class _Token:
    __slots__ = (
        "address",
        "agg_topic",
        "chain",
        "decimals",
        "holders_topic",
        "liq_topic",
        "long_traders",
        "metric_topic",
        "pools",
        "price",
        "ref",
        "seconds",
        "supply_raw",
        "symbol",
        "tx_topic",
        "windows",
    )

    def __init__(self, ev: TokenListed) -> None:
        self.chain = ev.chain
        self.address = ev.address
        self.symbol = ev.symbol
        self.decimals = ev.decimals
        self.supply_raw = ev.total_supply
        self.ref: ReferenceToken | None = reference_token(ev.chain, ev.address)
        self.pools: list[_Pool] = []
        self.price: float | None = None  # last included price, USD
        self.seconds = SecondBuckets()
        self.long_traders = {name: LongTraders(INTERVAL_MS[name]) for name in _LONG_INTERVALS}
        self.windows = [(name, RollingWindow(length)) for name, length in TOKEN_WINDOWS]
        self.tx_topic = make_topic(_TX, ev.chain, ev.address)
        self.agg_topic = make_topic(_AGG, ev.chain, ev.address)
        self.liq_topic = make_topic(_LIQ, ev.chain, ev.address)
        self.metric_topic = make_topic(_TOKEN_METRIC, ev.chain, ev.address)
        self.holders_topic = make_topic(_HOLDERS, ev.chain, ev.address)

    @property
    def quote_rank(self) -> int:
        return self.ref.quote_rank if self.ref is not None else 99


class _Pool:
    __slots__ = ("address", "chain", "dex", "metric_topic", "r0", "r1", "t0", "t1", "windows")

    def __init__(self, ev: PoolCreated, t0: _Token, t1: _Token) -> None:
        self.chain = ev.chain
        self.address = ev.pool
        self.dex = ev.dex
        self.t0 = t0
        self.t1 = t1
        self.r0 = 0
        self.r1 = 0
        self.windows = [(name, RollingWindow(length)) for name, length in POOL_WINDOWS]
        self.metric_topic = make_topic(_POOL_METRIC, ev.chain, ev.pool)

    @property
    def base_index(self) -> int:
        """The non-quote side: the one whose quote preference is lower (0 on a tie)."""
        return 1 if self.t1.quote_rank > self.t0.quote_rank else 0


@dataclass(slots=True)
class _Interval:
    """A watched kline or unique_trader identity and its next close."""

    topic: str
    token: _Token
    length_ms: int
    name: str
    next_close: int
    last_close: float | None = None


@dataclass(slots=True)
class _Coalesced:
    """A watched metric identity: pushed at most once per period, only when changed."""

    topic: str
    last_push: int = -(10**15)
    dirty: bool = True


class OnchainEngine:
    """State and payloads of the nine on-chain channels.

    Args:
        quote_price: USD price of a CoinMarketCap id (the market channel's
            ``p``), or None when unknown.
        metric_period_ms: at most one token/pool/holders metric push per
            identity per this period.
        dust_usd: swaps worth less are excluded as dust.
        outlier_ratio: swaps priced more than this factor away from the
            token's last included price are excluded as outliers.
    """

    def __init__(
        self,
        quote_price: Callable[[int], float | None],
        *,
        metric_period_ms: int = 1000,
        dust_usd: float = 0.01,
        outlier_ratio: float = 3.0,
    ) -> None:
        self._quote_price = quote_price
        self.metric_period_ms = metric_period_ms
        self.dust_usd = dust_usd
        self.outlier_ratio = outlier_ratio
        self.holders = HolderBook()
        self._tokens: dict[tuple[int, str], _Token] = {}
        self._pools: dict[tuple[int, str], _Pool] = {}
        self.watched: set[str] = set()
        self._intervals: dict[str, _Interval] = {}
        self._token_metrics: dict[str, tuple[_Token, _Coalesced]] = {}
        self._pool_metrics: dict[str, tuple[_Pool, _Coalesced]] = {}
        self._holder_metrics: dict[str, tuple[_Token, _Coalesced]] = {}
        self.swaps = 0
        self.excluded = 0
        self.unknown = 0

    # -- lookups -----------------------------------------------------------------------------

    def token(self, chain: int, address: str) -> _Token | None:
        return self._tokens.get((chain, address))

    def pool(self, chain: int, address: str) -> _Pool | None:
        return self._pools.get((chain, address))

    def usd(self, token: _Token) -> float | None:
        """A token's USD price: the market's for reference tokens, else its last price.

        A token that has liquidity but no included swap yet is worth what its
        deepest pool against a priced token implies.
        """
        if token.ref is not None:
            return self._quote_price(token.ref.cmc_id)
        if token.price is not None:
            return token.price
        best: tuple[int, float] | None = None
        for pool in token.pools:
            other = pool.t1 if token is pool.t0 else pool.t0
            if other.ref is None and other.price is None:
                continue  # never recurse through another unpriced token
            price = self.pool_price(pool, token)
            depth = pool.r1 if token is pool.t0 else pool.r0
            if price is not None and (best is None or depth > best[0]):
                best = (depth, price)
        return best[1] if best is not None else None

    def pool_price(self, pool: _Pool, token: _Token) -> float | None:
        """USD price of ``token`` implied by ``pool``'s reserves."""
        mine, other = (pool.r0, pool.r1) if token is pool.t0 else (pool.r1, pool.r0)
        other_token = pool.t1 if token is pool.t0 else pool.t0
        if mine <= 0 or other <= 0:
            return None
        other_usd = self.usd(other_token)
        if other_usd is None:
            return None
        ratio = units(other, other_token.decimals) / units(mine, token.decimals)
        return ratio * other_usd

    def pool_liquidity(self, pool: _Pool) -> float | None:
        """A pool's USD value; a side of unknown price counts as much as the other."""
        u0, u1 = self.usd(pool.t0), self.usd(pool.t1)
        v0 = units(pool.r0, pool.t0.decimals) * u0 if u0 is not None else None
        v1 = units(pool.r1, pool.t1.decimals) * u1 if u1 is not None else None
        if v0 is None and v1 is None:
            return None
        if v0 is None or v1 is None:
            return 2 * (v0 if v0 is not None else v1)  # type: ignore[operator]
        return v0 + v1

    def aggregate(self, token: _Token) -> tuple[float | None, float | None]:
        """``(ap, lu)``: liquidity-weighted price across the token's pools, and their total."""
        weighted = total = 0.0
        lu = 0.0
        known = False
        for pool in token.pools:
            liquidity = self.pool_liquidity(pool)
            if liquidity is None:
                continue
            known = True
            lu += liquidity
            price = self.pool_price(pool, token)
            if price is not None:
                weighted += price * liquidity
                total += liquidity
        ap = weighted / total if total > 0 else None
        return ap, (lu if known else None)

    # -- subscriptions ---------------------------------------------------------------------

    def watch(self, sub: Subscription, now_ms: int) -> None:
        """Start producing pushes for ``sub``; the node calls it on a topic's first subscriber."""
        self.watched.add(sub.topic)
        params = sub.params
        chain = params["platform_id"]
        assert isinstance(chain, int)
        if sub.channel == _WALLET:
            self.holders.watched_wallets.add((chain, str(params["wallet_address"])))
            return
        if sub.channel == _POOL_METRIC:
            pool = self._pools.get((chain, str(params["pool_address"])))
            if pool is not None:
                self._pool_metrics[sub.topic] = (pool, _Coalesced(sub.topic))
            return
        token = self._tokens.get((chain, str(params["address"])))
        if token is None:
            return  # acked, and simply nothing to push (an unknown address)
        if sub.channel in (_KLINE, _TRADERS):
            name = str(params["interval"])
            length = INTERVAL_MS[name]
            start = now_ms - now_ms % length
            self._intervals[sub.topic] = _Interval(sub.topic, token, length, name, start + length)
        elif sub.channel == _TOKEN_METRIC:
            self._token_metrics[sub.topic] = (token, _Coalesced(sub.topic))
        elif sub.channel == _HOLDERS:
            self._holder_metrics[sub.topic] = (token, _Coalesced(sub.topic))

    def unwatch(self, sub: Subscription) -> None:
        """Stop producing pushes for ``sub`` (its last subscriber left)."""
        self.watched.discard(sub.topic)
        if sub.channel == _WALLET:
            chain = sub.params["platform_id"]
            assert isinstance(chain, int)
            self.holders.watched_wallets.discard((chain, str(sub.params["wallet_address"])))
        self._intervals.pop(sub.topic, None)
        self._token_metrics.pop(sub.topic, None)
        self._pool_metrics.pop(sub.topic, None)
        self._holder_metrics.pop(sub.topic, None)

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: DexEvent) -> list[Update]:
        """Fold one raw event in; return the pushes it triggers immediately."""
        if isinstance(event, Swap):
            return self._swap(event)
        if isinstance(event, Transfer):
            return self._transfer(event)
        if isinstance(event, LiquidityChanged):
            return self._liquidity(event)
        if isinstance(event, NativeBalanceChanged):
            return self._wallet_updates(self.holders.on_native(event))
        if isinstance(event, TokenListed):
            key = (event.chain, event.address)
            if key not in self._tokens:
                self._tokens[key] = _Token(event)
            self.holders.on_token(event)
            return []
        if isinstance(event, PoolCreated):
            self._pool_created(event)
            return []
        if isinstance(event, WalletLabeled):
            self.holders.on_label(event)
            return []
        raise TypeError(f"not a DEX event: {type(event).__name__}")  # pragma: no cover

    def _pool_created(self, ev: PoolCreated) -> None:
        t0 = self._tokens.get((ev.chain, ev.token0))
        t1 = self._tokens.get((ev.chain, ev.token1))
        if t0 is None or t1 is None or (ev.chain, ev.pool) in self._pools:
            self.unknown += 1
            return
        pool = _Pool(ev, t0, t1)
        self._pools[(ev.chain, ev.pool)] = pool
        t0.pools.append(pool)
        t1.pools.append(pool)
        # A subscriber may have asked for the pool before it existed.
        topic = pool.metric_topic
        if topic in self.watched and topic not in self._pool_metrics:
            self._pool_metrics[topic] = (pool, _Coalesced(topic))

    def _swap(self, ev: Swap) -> list[Update]:
        pool = self._pools.get((ev.chain, ev.pool))
        if pool is None:
            self.unknown += 1
            return []
        self.swaps += 1
        t0, t1 = pool.t0, pool.t1
        in0 = ev.token_in == t0.address
        if in0:
            pool.r0 += ev.amount_in
            pool.r1 -= ev.amount_out
            a0, a1 = units(ev.amount_in, t0.decimals), units(ev.amount_out, t1.decimals)
        else:
            pool.r1 += ev.amount_in
            pool.r0 -= ev.amount_out
            a0, a1 = units(ev.amount_out, t0.decimals), units(ev.amount_in, t1.decimals)
        base_i = pool.base_index
        base, quote = (t0, t1) if base_i == 0 else (t1, t0)
        a_base, a_quote = (a0, a1) if base_i == 0 else (a1, a0)
        quote_usd = self.usd(quote)
        base_usd: float | None = None
        vu: float | None = None
        if quote_usd is not None and a_base > 0:
            base_usd = a_quote / a_base * quote_usd
            vu = a_quote * quote_usd
        elif base.ref is not None and a_quote > 0:
            # A pair of two non-quote tokens priced through the base side (rare).
            base_usd = self.usd(base)
            if base_usd is not None:
                vu = a_base * base_usd
                quote_usd = a_base / a_quote * base_usd
        bought_base = ev.token_in == quote.address
        txtp = TXTP_NORMAL
        if vu is None or vu < self.dust_usd:
            txtp = TXTP_DUST
        elif base.price is not None and base_usd is not None:
            ratio = base_usd / base.price
            if ratio > self.outlier_ratio or ratio * self.outlier_ratio < 1:
                txtp = TXTP_OUTLIER
        excluded = txtp != TXTP_NORMAL
        t0pu, t1pu = (base_usd, quote_usd) if base_i == 0 else (quote_usd, base_usd)
        out: list[Update] = []
        if not excluded:
            assert vu is not None
            if base_usd is not None:
                base.price = base_usd
            self._record(base, ev.ts, bought_base, vu, a_base, ev.trader, base_usd)
            self._record(quote, ev.ts, not bought_base, vu, a_quote, ev.trader, quote_usd)
            for _, window in pool.windows:
                window.add(ev.ts, bought_base, vu, a_base, ev.trader, base_usd)
            self._touch_pool(pool)
        else:
            self.excluded += 1
        watched = self.watched
        if t0.tx_topic in watched or t1.tx_topic in watched:
            payload = Transaction(
                pid=ev.chain,
                f=ev.sender,
                bh=ev.block,
                tp="buy" if bought_base else "sell",
                pa=pool.address,
                t0a=t0.address,
                t1a=t1.address,
                t0s=t0.symbol,
                t1s=t1.symbol,
                vu=vu,
                q=a1 / a0 if a0 > 0 else None,
                t0pu=t0pu,
                t1pu=t1pu,
                tx=ev.tx,
                ts=ev.ts,
                ma=ev.trader,
                ba=base.address,
                a0=a0,
                a1=a1,
                qi=1 - base_i,
                tii=0 if in0 else 1,
                lgid=_lgid(ev.chain, ev.log_index),
                iix=_iix(ev.chain, ev.instruction_index),
                ex=excluded,
                txtp=txtp,
            )
            # The same swap reaches the subscribers of both tokens, each with its own params.
            for token in (t0, t1):
                if token.tx_topic in watched:
                    out.append((token.tx_topic, payload))
        for token in (t0, t1):
            if token.agg_topic in watched:
                ap, lu = self.aggregate(token)
                out.append(
                    (
                        token.agg_topic,
                        TokenAggEvent(
                            pid=ev.chain,
                            a=token.address,
                            ap=ap,
                            p=self.pool_price(pool, token),
                            lu=lu,
                            ts=ev.ts,
                        ),
                    )
                )
        # Holder PnL: the trader sold one token and bought the other, valued at the
        # prices this swap set (so unrealized PnL is never a swap behind).
        holders = self.holders
        for token in (t0, t1):
            price = self.usd(token)
            if price is not None:
                holders.set_price(ev.chain, token.address, price)
            entry = self._holder_metrics.get(token.holders_topic)
            if entry is not None:
                entry[1].dirty = True  # tag PnL moves with the price
        token_in, token_out = (t0, t1) if in0 else (t1, t0)
        amount_in, amount_out = (a0, a1) if in0 else (a1, a0)
        usd_value = None if excluded else vu
        for token, qty in ((token_in, -amount_in), (token_out, amount_out)):
            legs = holders.on_trade(ev.chain, ev.trader, token.address, qty, usd_value, ev.ts)
            if legs:
                out.extend(self._wallet_updates(legs))
        return out

    def _record(
        self,
        token: _Token,
        ts: int,
        buy: bool,
        usd: float,
        amount: float,
        trader: str,
        price: float | None,
    ) -> None:
        """Count an included swap leg in the token's candles, traders and windows."""
        if price is not None:
            token.seconds.add(ts, price, usd, trader)
        for counter in token.long_traders.values():
            counter.add(ts, trader)
        for _, window in token.windows:
            window.add(ts, buy, usd, amount, trader, price)
        entry = self._token_metrics.get(token.metric_topic)
        if entry is not None:
            entry[1].dirty = True

    def _touch_pool(self, pool: _Pool) -> None:
        entry = self._pool_metrics.get(pool.metric_topic)
        if entry is not None:
            entry[1].dirty = True

    def _liquidity(self, ev: LiquidityChanged) -> list[Update]:
        pool = self._pools.get((ev.chain, ev.pool))
        if pool is None:
            self.unknown += 1
            return []
        if ev.action == "remove":
            pool.r0 = max(pool.r0 - ev.amount0, 0)
            pool.r1 = max(pool.r1 - ev.amount1, 0)
        else:  # add, migrate: liquidity arrives in this pool
            pool.r0 += ev.amount0
            pool.r1 += ev.amount1
        self._touch_pool(pool)
        t0, t1 = pool.t0, pool.t1
        watched = self.watched
        if t0.liq_topic not in watched and t1.liq_topic not in watched:
            return []
        a0, a1 = units(ev.amount0, t0.decimals), units(ev.amount1, t1.decimals)
        u0, u1 = self.usd(t0), self.usd(t1)
        values = [a * u for a, u in ((a0, u0), (a1, u1)) if u is not None]
        payload = LiquidityEvent(
            pid=ev.chain,
            f=ev.sender,
            ts=ev.ts,
            tp=ev.action,
            t0s=t0.symbol,
            t1s=t1.symbol,
            t0a=t0.address,
            t1a=t1.address,
            a0=a0,
            a1=a1,
            vu=sum(values) if values else None,
            ma=ev.provider,
            tx=ev.tx,
            lgid=_lgid(ev.chain, ev.log_index),
            iix=_iix(ev.chain, ev.instruction_index),
            pa=pool.address,
        )
        return [(t.liq_topic, payload) for t in (t0, t1) if t.liq_topic in watched]

    def _transfer(self, ev: Transfer) -> list[Update]:
        out = self._wallet_updates(self.holders.on_transfer(ev))
        token = self._tokens.get((ev.chain, ev.token))
        if token is not None:
            entry = self._holder_metrics.get(token.holders_topic)
            if entry is not None:
                entry[1].dirty = True
        return out

    def _wallet_updates(self, updates: Iterable[Any]) -> list[Update]:
        return [(make_topic(_WALLET, u.pid, u.wa), u) for u in updates]

    # -- time ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[Update]:
        """Everything due by ``now_ms``: interval closes and coalesced metrics."""
        out: list[Update] = []
        for interval in self._intervals.values():
            while interval.next_close <= now_ms:
                out.extend(self._close(interval))
        period = self.metric_period_ms
        for token, state in self._token_metrics.values():
            if state.dirty and now_ms - state.last_push >= period:
                out.append((state.topic, self.token_metric(token, now_ms)))
                state.dirty, state.last_push = False, now_ms
        for pool, state in self._pool_metrics.values():
            if state.dirty and now_ms - state.last_push >= period:
                out.append((state.topic, self.pool_metric(pool, now_ms)))
                state.dirty, state.last_push = False, now_ms
        for token, state in self._holder_metrics.values():
            if state.dirty and now_ms - state.last_push >= period:
                out.extend(
                    (state.topic, m)
                    for m in self.holders.metrics(token.chain, token.address, now_ms)
                )
                state.dirty, state.last_push = False, now_ms
        return out

    def _close(self, interval: _Interval) -> list[Update]:
        start = interval.next_close - interval.length_ms
        interval.next_close += interval.length_ms
        token = interval.token
        if interval.topic.startswith(_TRADERS):
            if interval.name in token.long_traders:
                count = token.long_traders[interval.name].unique(start)
            else:
                count = token.seconds.unique(start, interval.length_ms)
            return [(interval.topic, UniqueTrader(ut=count, ot=start))]
        candle = token.seconds.candle(start, interval.length_ms)
        if candle is None:
            previous = interval.last_close
            if previous is None:
                previous = token.seconds.close_before(start)
            if previous is None:
                return []  # never traded: nothing to draw yet
            interval.last_close = previous
            flat = Kline(o=previous, h=previous, l=previous, c=previous, vu=0.0, ot=start)
            return [(interval.topic, flat)]
        o, h, low, c, vu = candle
        interval.last_close = c
        return [(interval.topic, Kline(o=o, h=h, l=low, c=c, vu=vu, ot=start))]

    def token_metric(self, token: _Token, now_ms: int) -> TokenMetric:
        """The ``token_metric`` payload of ``token`` at ``now_ms``, every window."""
        price = self.usd(token)
        _, lu = self.aggregate(token)
        supply = units(token.supply_raw, token.decimals)
        windows = []
        for name, window in token.windows:
            t = window.totals(now_ms)
            windows.append(_token_window(name, t))
        return TokenMetric(
            pid=token.chain,
            a=token.address,
            p=price,
            mc=price * supply if price is not None and supply > 0 else None,
            lu=lu,
            sts=windows,
        )

    def pool_metric(self, pool: _Pool, now_ms: int) -> PoolMetric:
        """The ``pool_metric`` payload of ``pool`` at ``now_ms``, all five windows."""
        w = {name: _pool_window(window.totals(now_ms)) for name, window in pool.windows}
        return PoolMetric(
            pid=pool.chain,
            pa=pool.address,
            m5=w["5m"],
            h1=w["1h"],
            h4=w["4h"],
            h24=w["24h"],
            d7=w["7d"],
        )

    def statistics(self) -> dict[str, int]:
        return {
            "tokens": len(self._tokens),
            "pools": len(self._pools),
            "swaps": self.swaps,
            "excluded": self.excluded,
            "unknown": self.unknown,
            "watched": len(self.watched),
        }


def _lgid(chain: int, log_index: int | None) -> int | UnsetType:
    """``lgid``, the dedupe key with ``tx``, on EVM chains only (Q16)."""
    return UNSET if chain == SOLANA or log_index is None else log_index


def _iix(chain: int, instruction_index: int | None) -> int | UnsetType:
    """``iix``, the dedupe key with ``tx``, on Solana only (Q16)."""
    return instruction_index if chain == SOLANA and instruction_index is not None else UNSET


def _token_window(name: str, t: WindowTotals) -> TokenWindow:
    txs = t.bc + t.sc
    pc = None
    if t.open is not None and t.last is not None and t.open > 0:
        pc = (t.last - t.open) / t.open * 100.0
    return TokenWindow(
        win=name,
        vu=t.bvu + t.svu,
        vn=t.bvn + t.svn,
        pc=pc,
        txs=txs,
        bc=t.bc,
        sc=t.sc,
        bvu=t.bvu,
        svu=t.svu,
        bvn=t.bvn,
        svn=t.svn,
        ut=t.ut,
        but=t.but,
        sut=t.sut,
        h=t.h,
        l=t.l,
    )


def _pool_window(t: WindowTotals) -> PoolWindow:
    return PoolWindow(bvn=t.bvn, bvu=t.bvu, svn=t.svn, svu=t.svu, ut=t.ut, but=t.but, sut=t.sut)
