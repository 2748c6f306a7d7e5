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
  events and swaps, or concentrated-liquidity pools (Uniswap V3) whose
  reserves (the tokens they hold) follow the same events but whose price is
  the one they state (``sqrt_price_x96``). A token's USD price comes through
  the quote side of a pool: stablecoins and wrapped native coins are priced by
  the market channel (the ``quote_price`` callback, by CoinMarketCap id); any
  other token by its own last price.
- **A swap** is *excluded* (``ex: true``) when it is dust (under
  ``dust_usd``) or its price is an outlier (more than ``outlier_ratio`` away
  from the token's last included price); excluded swaps move reserves, as on
  chain, but no price, candle or metric. Prices read from a pool (``p`` and
  ``ap`` of ``token_agg_event``, ``lu``, the price of a token not traded yet)
  follow the reserves as of the pool's last included swap or liquidity
  change, so an excluded swap moves none of them either: it is still pushed
  (``token_agg_event`` comes on each swap), with the numbers it left alone.
- **Candles and unique traders** are cut from per-second buckets at interval
  close; an interval without swaps carries the previous close with zero volume
  (so consecutive candles are exactly one interval apart).
- **Rolling windows** are exact: every included trade of the trailing length
  and none older (:mod:`cmcstream.engine.windows`).
- Candles, trader counts and windows take an included swap a run at a time
  (a second, split on its first millisecond): each token and pool tapes its
  trades and folds the run when the next one starts or before it is read
  (:mod:`cmcstream.engine.trades`); prices, reserves and holders move with
  every event.
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
from cmcstream.engine.numeric import quotient, scale, units
from cmcstream.engine.tokens import ReferenceToken, reference_token
from cmcstream.engine.trades import Tape, run_key
from cmcstream.engine.units import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS
from cmcstream.engine.windows import RollingWindows, WindowTotals
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
_Q96: Final = float(2**96)


@dataclass(slots=True)
class _Coalesced:
    """A metric identity's push state: pushed at most once per period, only when changed.

    Every token and pool keeps one per metric channel. Swaps mark the token and
    pool metrics changed whether or not anyone watches (cheaper than asking); the
    holder book tracks holder changes itself
    (:meth:`~cmcstream.engine.holders.HolderBook.take_changed`). :meth:`watch`
    starts a state afresh.
    """

    topic: str
    last_push: int = -(10**15)
    dirty: bool = True

    def watch(self, topic: str) -> None:
        """Start pushing to ``topic``: at the next chance, then once per period."""
        self.topic = topic
        self.last_push = -(10**15)
        self.dirty = True


class _Token:
    __slots__ = (
        "address",
        "agg_topic",
        "chain",
        "cmc_id",
        "decimals",
        "holders_state",
        "holders_topic",
        "liq_topic",
        "liquidity_known",
        "long_traders",
        "metric_state",
        "metric_topic",
        "pools",
        "price",
        "ref",
        "scale",
        "seconds",
        "supply_raw",
        "swap_pushes",
        "symbol",
        "tape",
        "tx_topic",
        "windows",
    )

    def __init__(self, ev: TokenListed) -> None:
        self.chain = ev.chain
        self.address = ev.address
        self.symbol = ev.symbol
        self.decimals = ev.decimals
        self.scale = scale(ev.decimals)  # raw / scale = units(raw, decimals)
        self.supply_raw = ev.total_supply
        self.liquidity_known = ev.liquidity_known
        self.ref: ReferenceToken | None = reference_token(ev.chain, ev.address)
        self.cmc_id = self.ref.cmc_id if self.ref is not None else None
        self.pools: list[_Pool] = []
        self.price: float | None = None  # last included price, USD
        self.tape = Tape()
        self.seconds = SecondBuckets()
        self.long_traders = {name: LongTraders(INTERVAL_MS[name]) for name in _LONG_INTERVALS}
        self.windows = RollingWindows([length for _, length in TOKEN_WINDOWS])
        self.tx_topic = make_topic(_TX, ev.chain, ev.address)
        self.agg_topic = make_topic(_AGG, ev.chain, ev.address)
        self.liq_topic = make_topic(_LIQ, ev.chain, ev.address)
        self.metric_topic = make_topic(_TOKEN_METRIC, ev.chain, ev.address)
        self.holders_topic = make_topic(_HOLDERS, ev.chain, ev.address)
        self.metric_state = _Coalesced(self.metric_topic)
        self.holders_state = _Coalesced(self.holders_topic)
        self.swap_pushes = False  # whether its swaps are pushed at once (see OnchainEngine.watch)

    @property
    def quote_rank(self) -> int:
        return self.ref.quote_rank if self.ref is not None else 99

    def fold(self) -> None:
        """Count the taped trades in the candles, trader counts and windows."""
        run = self.tape.take()
        if run is not None:
            self.seconds.add(run)
            for counter in self.long_traders.values():
                counter.add(run)
            self.windows.add(run)


class _Pool:
    __slots__ = (
        "address",
        "base",
        "base_index",
        "chain",
        "dex",
        "metric_state",
        "metric_topic",
        "priced0",
        "priced1",
        "priced_sqrt",
        "quote",
        "r0",
        "r1",
        "sqrt",
        "stale",
        "t0",
        "t1",
        "tape",
        "u0",
        "u1",
        "windows",
    )

    def __init__(self, ev: PoolCreated, t0: _Token, t1: _Token) -> None:
        self.chain = ev.chain
        self.address = ev.pool
        self.dex = ev.dex
        self.t0 = t0
        self.t1 = t1
        self.r0 = 0  # raw reserves
        self.r1 = 0
        # The raw reserves as of the last included swap or liquidity change: an excluded
        # swap moves the reserves, as on chain, but no price read from the pool.
        self.priced0 = self.priced1 = 0
        # A concentrated-liquidity pool's stated price, latest and as of the last included swap.
        self.sqrt = ev.sqrt_price_x96
        self.priced_sqrt = ev.sqrt_price_x96
        # ``priced0/1`` in token units, worked out again only when read after a change:
        # a watched token's every swap reads all of its pools' prices and liquidity.
        self.u0 = self.u1 = 0.0
        self.stale = False
        # The non-quote side: the one whose quote preference is lower (0 on a tie).
        # A token's preference is fixed when it is listed, so a pool's sides are too.
        self.base_index = 1 if t1.quote_rank > t0.quote_rank else 0
        self.base, self.quote = (t0, t1) if self.base_index == 0 else (t1, t0)
        self.tape = Tape()
        self.windows = RollingWindows([length for _, length in POOL_WINDOWS], prices=False)
        self.metric_topic = make_topic(_POOL_METRIC, ev.chain, ev.pool)
        self.metric_state = _Coalesced(self.metric_topic)

    def fold(self) -> None:
        """Count the taped trades in the windows."""
        run = self.tape.take()
        if run is not None:
            self.windows.add(run)

    def refresh_units(self) -> None:
        """``u0``/``u1`` from the priced reserves (call when ``stale``)."""
        self.u0 = quotient(self.priced0, self.t0.scale)
        self.u1 = quotient(self.priced1, self.t1.scale)
        self.stale = False


@dataclass(slots=True)
class _Interval:
    """A watched kline or unique_trader identity and its next close."""

    topic: str
    token: _Token
    length_ms: int
    name: str
    next_close: int
    last_close: float | None = None


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
        self._wallet_topics: dict[tuple[int, str], str] = {}  # of the wallets pushed to
        self._swap_topics: dict[str, _Token] = {}  # transaction and token_agg_event topics
        # Tokens and pools with taped trades, in the order they got them (an ordered set).
        self._unfolded: dict[_Token | _Pool, None] = {}
        self._handlers: dict[type, Callable[[Any], list[Update]]] = {
            Swap: self._swap,
            Transfer: self._transfer,
            NativeBalanceChanged: self._native,
            LiquidityChanged: self._liquidity,
            TokenListed: self._token_listed,
            PoolCreated: self._pool_created,
            WalletLabeled: self._wallet_labeled,
        }
        self.swaps = 0
        self.excluded = 0
        self.unknown = 0

    # -- lookups -----------------------------------------------------------------------------

    def token(self, chain: int, address: str) -> _Token | None:
        return self._tokens.get((chain, address))

    def pool(self, chain: int, address: str) -> _Pool | None:
        return self._pools.get((chain, address))

    def listed_tokens(self) -> list[tuple[int, str, str]]:
        """``(platform, address, symbol)`` of every token listed so far."""
        return [(t.chain, t.address, t.symbol) for t in self._tokens.values()]

    def listed_pools(self) -> list[tuple[int, str, str, str]]:
        """``(platform, address, dex, "BASE/QUOTE")`` of every pool created so far."""
        return [
            (p.chain, p.address, p.dex, f"{p.base.symbol}/{p.quote.symbol}")
            for p in self._pools.values()
        ]

    def usd(self, token: _Token) -> float | None:
        """A token's USD price: the market's for reference tokens, else its last price.

        A token that has liquidity but no included swap yet is worth what its
        deepest pool against a priced token implies.
        """
        if token.cmc_id is not None:
            return self._quote_price(token.cmc_id)
        if token.price is not None:
            return token.price
        best: tuple[int, float] | None = None
        for pool in token.pools:
            other = pool.t1 if token is pool.t0 else pool.t0
            if other.ref is None and other.price is None:
                continue  # never recurse through another unpriced token
            price = self.pool_price(pool, token)
            depth = pool.priced1 if token is pool.t0 else pool.priced0
            if price is not None and (best is None or depth > best[0]):
                best = (depth, price)
        return best[1] if best is not None else None

    def pool_price(self, pool: _Pool, token: _Token) -> float | None:
        """USD price of ``token`` implied by ``pool``'s reserves, or its stated price."""
        sqrt = pool.priced_sqrt
        if sqrt is not None:
            if sqrt <= 0:
                return None
            other_usd = self.usd(pool.t1 if token is pool.t0 else pool.t0)
            if other_usd is None:
                return None
            # token0 in token1: (sqrt / 2**96)**2 raw, times 10**(decimals0 - decimals1).
            price0 = (sqrt / _Q96) ** 2 * quotient(pool.t0.scale, pool.t1.scale)
            if price0 <= 0.0:
                return None
            return (price0 if token is pool.t0 else 1.0 / price0) * other_usd
        if pool.priced0 <= 0 or pool.priced1 <= 0:
            return None
        other_usd = self.usd(pool.t1 if token is pool.t0 else pool.t0)
        if other_usd is None:
            return None
        if pool.stale:
            pool.refresh_units()
        ratio = pool.u1 / pool.u0 if token is pool.t0 else pool.u0 / pool.u1
        return ratio * other_usd

    def pool_liquidity(self, pool: _Pool) -> float | None:
        """A pool's USD value; a side of unknown price counts as much as the other."""
        u0, u1 = self.usd(pool.t0), self.usd(pool.t1)
        if pool.stale:
            pool.refresh_units()
        v0 = pool.u0 * u0 if u0 is not None else None
        v1 = pool.u1 * u1 if u1 is not None else None
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
        return ap, (lu if known and token.liquidity_known else None)

    # -- subscriptions ---------------------------------------------------------------------

    def watch(self, sub: Subscription, now_ms: int) -> None:
        """Start producing pushes for ``sub``; the node calls it on a topic's first subscriber."""
        self.watched.add(sub.topic)
        self._watch_swaps(sub.topic)
        params = sub.params
        chain = params["platform_id"]
        assert isinstance(chain, int)
        if sub.channel == _WALLET:
            self.holders.watch_wallet(chain, str(params["wallet_address"]))
            return
        if sub.channel == _POOL_METRIC:
            pool = self._pools.get((chain, str(params["pool_address"])))
            if pool is not None:
                pool.metric_state.watch(sub.topic)
                self._pool_metrics[sub.topic] = (pool, pool.metric_state)
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
            token.metric_state.watch(sub.topic)
            self._token_metrics[sub.topic] = (token, token.metric_state)
        elif sub.channel == _HOLDERS:
            token.holders_state.watch(sub.topic)
            self._holder_metrics[sub.topic] = (token, token.holders_state)

    def unwatch(self, sub: Subscription) -> None:
        """Stop producing pushes for ``sub`` (its last subscriber left)."""
        self.watched.discard(sub.topic)
        self._watch_swaps(sub.topic)
        if sub.channel == _WALLET:
            chain = sub.params["platform_id"]
            assert isinstance(chain, int)
            self.holders.unwatch_wallet(chain, str(sub.params["wallet_address"]))
        self._intervals.pop(sub.topic, None)
        self._token_metrics.pop(sub.topic, None)
        self._pool_metrics.pop(sub.topic, None)
        self._holder_metrics.pop(sub.topic, None)

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: DexEvent) -> list[Update]:
        """Fold one raw event in; return the pushes it triggers immediately."""
        # The three commonest events are called directly: a compiled build then
        # calls the handler natively instead of through a bound method.
        kind = type(event)
        if kind is Transfer:
            return self._transfer(event)  # type: ignore[arg-type]
        if kind is Swap:
            return self._swap(event)  # type: ignore[arg-type]
        if kind is NativeBalanceChanged:
            return self._native(event)  # type: ignore[arg-type]
        try:
            handler = self._handlers[kind]
        except KeyError:
            handler = self._handler_of(kind)
        return handler(event)

    def apply_many(self, events: Iterable[DexEvent]) -> list[Update]:
        """Fold events in, in order; the pushes they trigger, in order.

        The same as :meth:`apply` per event, in one call: a compiled build then
        runs the loop natively too.
        """
        out: list[Update] = []
        for event in events:
            updates = self.apply(event)
            if updates:
                out += updates
        return out

    def _handler_of(self, kind: type) -> Callable[[Any], list[Update]]:
        """The handler of a subclass of an event type, remembered for the next one."""
        for base, handler in list(self._handlers.items()):
            if issubclass(kind, base):
                self._handlers[kind] = handler
                return handler
        raise TypeError(f"not a DEX event: {kind.__name__}")

    def _watch_swaps(self, topic: str) -> None:
        # Most swaps concern tokens nobody watches the swaps of: one flag per token
        # tells the swap path so, instead of a lookup per topic per swap.
        token = self._swap_topics.get(topic)
        if token is not None:
            watched = self.watched
            token.swap_pushes = token.tx_topic in watched or token.agg_topic in watched

    def _token_listed(self, ev: TokenListed) -> list[Update]:
        key = (ev.chain, ev.address)
        if key not in self._tokens:
            token = self._tokens[key] = _Token(ev)
            for topic in (token.tx_topic, token.agg_topic):
                self._swap_topics[topic] = token
                self._watch_swaps(topic)
        self.holders.on_token(ev)
        return []

    def _wallet_labeled(self, ev: WalletLabeled) -> list[Update]:
        self.holders.on_label(ev)
        return []

    def _native(self, ev: NativeBalanceChanged) -> list[Update]:
        updates = self.holders.on_native(ev)
        return self._wallet_updates(updates) if updates else []

    def _pool_created(self, ev: PoolCreated) -> list[Update]:
        t0 = self._tokens.get((ev.chain, ev.token0))
        t1 = self._tokens.get((ev.chain, ev.token1))
        if t0 is None or t1 is None or (ev.chain, ev.pool) in self._pools:
            self.unknown += 1
            return []
        pool = _Pool(ev, t0, t1)
        self._pools[(ev.chain, ev.pool)] = pool
        t0.pools.append(pool)
        t1.pools.append(pool)
        # A subscriber may have asked for the pool before it existed.
        topic = pool.metric_topic
        if topic in self.watched and topic not in self._pool_metrics:
            self._pool_metrics[topic] = (pool, pool.metric_state)
        return []

    def _swap(self, ev: Swap) -> list[Update]:
        chain = ev.chain
        pool = self._pools.get((chain, ev.pool))
        if pool is None:
            self.unknown += 1
            return []
        self.swaps += 1
        if ev.sqrt_price_x96 is not None:
            pool.sqrt = ev.sqrt_price_x96
        t0, t1 = pool.t0, pool.t1
        amount_in, amount_out = ev.amount_in, ev.amount_out
        in0 = ev.token_in == t0.address
        if in0:
            pool.r0 += amount_in
            pool.r1 -= amount_out
            a0, a1 = quotient(amount_in, t0.scale), quotient(amount_out, t1.scale)
        else:
            pool.r1 += amount_in
            pool.r0 -= amount_out
            a0, a1 = quotient(amount_out, t0.scale), quotient(amount_in, t1.scale)
        base_i = pool.base_index
        base, quote = pool.base, pool.quote
        a_base, a_quote = (a0, a1) if base_i == 0 else (a1, a0)
        # A reference quote is worth the market's price, read once for the whole swap.
        market = self._quote_price(quote.cmc_id) if quote.cmc_id is not None else None
        quote_usd = market if quote.cmc_id is not None else self.usd(quote)
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
        ts, trader = ev.ts, ev.trader
        out: list[Update] = []
        if not excluded:
            # Included means priced: both branches above that set ``vu`` set both prices.
            assert vu is not None
            assert base_usd is not None
            assert quote_usd is not None
            base.price = base_usd
            pool.priced0, pool.priced1 = pool.r0, pool.r1
            pool.priced_sqrt = pool.sqrt
            pool.stale = True
            key = run_key(ts)
            # The base token and the pool tape the trade as the base side sees it, the
            # quote token as its own side: the same five values per entity (trades.FIELDS).
            if base.tape.key != key:
                self._new_run(base, key)
            base.tape.trades += (bought_base, vu, a_base, trader, base_usd)
            if quote.tape.key != key:
                self._new_run(quote, key)
            quote.tape.trades += (not bought_base, vu, a_quote, trader, quote_usd)
            if pool.tape.key != key:
                self._new_run(pool, key)
            pool.tape.trades += (bought_base, vu, a_base, trader, base_usd)
            base.metric_state.dirty = quote.metric_state.dirty = True
            pool.metric_state.dirty = True
        else:
            self.excluded += 1
        if t0.swap_pushes or t1.swap_pushes:
            out += self._swap_pushes(ev, pool, in0, a0, a1, base_usd, quote_usd, vu, txtp)
        # Holder PnL: the trader sold one token and bought the other, valued at the
        # prices this swap set (so unrealized PnL is never a swap behind): ``usd`` of
        # each side, without asking again for the market's price or the one just set.
        p_quote = market if quote.cmc_id is not None else self.usd(quote)
        if base.cmc_id is None and base.price is not None:
            p_base: float | None = base.price
        else:
            p_base = self.usd(base)
        p0, p1 = (p_base, p_quote) if base_i == 0 else (p_quote, p_base)
        if in0:
            sold, bought = (t0.address, a0, p0), (t1.address, a1, p1)
        else:
            sold, bought = (t1.address, a1, p1), (t0.address, a0, p0)
        usd_value = None if excluded else vu
        pnl = self.holders.on_swap(chain, trader, ts, usd_value, sold, bought)
        if pnl:
            out += self._wallet_updates(pnl)
        return out

    def _swap_pushes(
        self,
        ev: Swap,
        pool: _Pool,
        in0: bool,
        a0: float,
        a1: float,
        base_usd: float | None,
        quote_usd: float | None,
        vu: float | None,
        txtp: int,
    ) -> list[Update]:
        """The ``transaction`` and ``token_agg_event`` pushes of a swap, for watched tokens."""
        chain, ts, trader = ev.chain, ev.ts, ev.trader
        t0, t1 = pool.t0, pool.t1
        base_i, base = pool.base_index, pool.base
        bought_base = ev.token_in == pool.quote.address
        excluded = txtp != TXTP_NORMAL
        watched = self.watched
        out: list[Update] = []
        if t0.tx_topic in watched or t1.tx_topic in watched:
            payload = Transaction(
                pid=chain,
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
                t0pu=base_usd if base_i == 0 else quote_usd,
                t1pu=quote_usd if base_i == 0 else base_usd,
                tx=ev.tx,
                ts=ts,
                ma=trader,
                ba=base.address,
                a0=a0,
                a1=a1,
                qi=1 - base_i,
                tii=0 if in0 else 1,
                lgid=_lgid(chain, ev.log_index),
                iix=_iix(chain, ev.instruction_index),
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
                            pid=chain,
                            a=token.address,
                            ap=ap,
                            p=self.pool_price(pool, token),
                            lu=lu,
                            ts=ts,
                        ),
                    )
                )
        return out

    def _new_run(self, entity: _Token | _Pool, key: int) -> None:
        """Fold the trades of the entity's previous run and tape run ``key``."""
        entity.fold()
        entity.tape.key = key
        self._unfolded[entity] = None

    def _liquidity(self, ev: LiquidityChanged) -> list[Update]:
        pool = self._pools.get((ev.chain, ev.pool))
        if pool is None:
            self.unknown += 1
            return []
        # Liquidity moves the pool's depth at its price: the priced reserves move with it.
        if ev.action == "remove":
            pool.r0 = max(pool.r0 - ev.amount0, 0)
            pool.r1 = max(pool.r1 - ev.amount1, 0)
            pool.priced0 = max(pool.priced0 - ev.amount0, 0)
            pool.priced1 = max(pool.priced1 - ev.amount1, 0)
        else:  # add, migrate: liquidity arrives in this pool
            pool.r0 += ev.amount0
            pool.r1 += ev.amount1
            pool.priced0 += ev.amount0
            pool.priced1 += ev.amount1
        pool.stale = True
        pool.metric_state.dirty = True
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
        updates = self.holders.on_transfer(ev)
        return self._wallet_updates(updates) if updates else []

    def _wallet_updates(self, updates: Iterable[Any]) -> list[Update]:
        topics = self._wallet_topics
        out: list[Update] = []
        for update in updates:
            key = (update.pid, update.wa)
            topic = topics.get(key)
            if topic is None:
                topic = topics[key] = make_topic(_WALLET, *key)
            out.append((topic, update))
        return out

    # -- time ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[Update]:
        """Everything due by ``now_ms``: interval closes and coalesced metrics."""
        for entity in self._unfolded:
            entity.fold()
        self._unfolded.clear()
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
        holders = self.holders
        for token, state in self._holder_metrics.values():
            if holders.take_changed(token.chain, token.address):
                state.dirty = True
            if state.dirty and now_ms - state.last_push >= period:
                out.extend(
                    (state.topic, m) for m in holders.metrics(token.chain, token.address, now_ms)
                )
                state.dirty, state.last_push = False, now_ms
        return out

    def _close(self, interval: _Interval) -> list[Update]:
        start = interval.next_close - interval.length_ms
        interval.next_close += interval.length_ms
        token = interval.token
        token.fold()
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
        token.fold()
        price = self.usd(token)
        _, lu = self.aggregate(token)
        supply = units(token.supply_raw, token.decimals)
        totals = token.windows.totals(now_ms)
        windows = [
            _token_window(name, t) for (name, _), t in zip(TOKEN_WINDOWS, totals, strict=True)
        ]
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
        pool.fold()
        totals = pool.windows.totals(now_ms)
        w = {name: _pool_window(t) for (name, _), t in zip(POOL_WINDOWS, totals, strict=True)}
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
        vu=t.vu,
        vn=t.vn,
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
