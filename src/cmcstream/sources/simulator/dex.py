"""The DEX simulator: raw on-chain events for a :class:`DexWorld`, from a seed.

It plays the chains a real ingester would read: token listings, pool
creations, liquidity, swaps, token transfers and native balances, as the raw
events of :mod:`cmcstream.engine.events`. It never builds a payload: the engine
computes prices, candles, metrics and holders from these events exactly as it
would from a real chain.

**Book-keeping is exact.** Every pool is a constant-product pair whose integer
reserves move exactly as Uniswap V2's do (``amount_out`` from
:func:`amount_out`, fee taken from the amount in); every balance of every token
and wallet is kept, so a transfer never moves more than its sender holds and the
transfers into and out of a pool add up to its reserves. Liquidity is accounted
in LP shares, with Uniswap's minimum liquidity locked at the first deposit, so
no withdrawal can empty a pool.

**Time.** Simulated time is cut into one-second ticks on a fixed grid; each
tick draws its arrivals and executes them in time order. :meth:`DexSimulator.step`
generates every tick up to the one holding ``now_ms`` and returns the events
stamped at or before ``now_ms``, holding the rest for the next call. The grid
does not depend on when ``step`` is called, so stepping every second or every
minute gives the same stream (for the same prices). A transaction at time *t*
lands in the first block at or after *t*: block heights and block times follow
each chain's schedule (Ethereum 12 s, BSC 0.75 s, Solana 0.4 s slots, Base 2 s),
anchored at realistic heights in May 2026. On EVM chains a log index counts
the logs of its block; on Solana an instruction index counts the instructions
of its transaction (0 and 1 are the compute-budget instructions).

**Trading.** Swaps arrive as a Poisson process per pool whose rate is the
pool's ``activity`` times a burst factor: each pool has bursts of its own
(several times its rate, decaying over tens of seconds) and each chain has
waves that lift all its pools. Who trades depends on the tags:

* untagged retail: most swaps, modest log-normal sizes;
* bots: frequent and small; one per chain arbitrages every major pool back to
  the market price (the ``prices`` given to each call) and the pools of a meme
  against each other, and a few relay other wallets' orders (then the
  transaction's ``sender`` is the relayer and the ``trader`` the wallet);
* whales: rare, Pareto-sized;
* snipers: buy a fresh token in its first seconds (at the start and after a
  migration), then take profit;
* smart money: buys a meme's dips (a price well under its ten-minute average);
* KOLs: their buy starts a pump (a burst with mostly buys);
* devs: now and then dump part of their bag, which starts a sell-off;
* bundlers: hold a share of every launch and sell it off over time.

**Arbitrage.** A swap that moves one of a meme's pools away from the others is
arbitraged by the chain's arbitrage bot: bought in the cheapest pool and sold in
the dearest in one transaction (two swaps on the tape), until the two prices are
a round trip's fees apart, and only when the trade earns more than its gas. Most
gaps close in the swap's own block (a backrun), gaps over 2 % beyond the fees
always do, the rest a block or two later; the quote coins' market moves are
caught a few times a minute. So a meme's pools sit within fee-plus-gas bounds of
each other: about 0.5 % apart, wider only for a block or on thin Ethereum pools,
where gas outweighs what closing a small gap would earn.

Sells come from wallets that hold the token. Rarer events: liquidity adds and
removes, plain wallet-to-wallet transfers, deposits from the exchange hot
wallet when a trader runs short of a quote token or of gas, dust swaps (under
one cent) and fat-finger buys in a meme's thinnest pool, priced several times
off the other pools and arbitraged back in the same block. Each world plans one
migration per chain: the dev pulls the meme's main-pool liquidity and puts it in
a new pool on another DEX in one transaction.

**Rates.** At ``activity=1.0`` the world averages about four swaps per simulated
second, with bursts well above. A meme's KOL calls, dumps and fat fingers come
in proportion to its expected swap rate, so a quiet meme is not pushed around
by events its thin flow could never absorb. ``activity`` multiplies the rates
of every flow (swaps, liquidity, transfers, dip buys, fat fingers), not the
lifecycle of the world (bursts, KOL calls, dumps, migrations).

**Cost.** A swap is one pass through :meth:`DexSimulator._swap` with
precomputed tables for trade sizes, gas and signatures; a swap storm
(``activity=1000``) generates some 80,000 swaps (350,000 events) per CPU second.
"""

from __future__ import annotations

import heapq
import itertools
import random
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from math import exp, isqrt, log, sqrt
from operator import attrgetter
from typing import Any, Final

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
from cmcstream.engine.tokens import NATIVE
from cmcstream.sources.simulator.dex_world import (
    B58_ALPHABET,
    SOLANA,
    DexWorld,
    PoolInfo,
    TokenInfo,
)

__all__ = ["CHAIN_CLOCKS", "DEFAULT_PRICES", "TICK_MS", "WARM_UP", "DexSimulator", "amount_out"]

TICK_MS: Final = 1_000
"""Length of a simulation tick, in ms: arrivals are drawn per tick on a fixed grid."""

_MINUTE: Final = 60_000
_HOUR: Final = 60 * _MINUTE
WARM_UP: Final[tuple[tuple[int, int, float, float], ...]] = (
    (7 * 24 * _HOUR, 300_000, 2048.0, 8.0),
    (24 * _HOUR, 60_000, 128.0, 4.0),
    (4 * _HOUR, 10_000, 16.0, 2.0),
    (10 * _MINUTE, 1_000, 1.0, 1.0),
)
"""The history :meth:`DexSimulator.warm_up` plays before the start, oldest first: how
long before the start each stretch begins (it runs to the next one, the last to
the start), its tick in ms, how many times fewer trades it has (every flow and
lifecycle rate divided by it), and how many times larger they are (within the
usual caps on a pool's reserves)."""

DEFAULT_PRICES: Final[Mapping[int, float]] = {
    825: 1.0,
    3408: 1.0,
    4943: 1.0,
    1027: 2460.0,
    3717: 81187.93,
    1839: 640.0,
    5426: 135.0,
}
"""USD prices of the reference coins used when the caller's prices lack one."""

_ANCHOR_TS: Final = 1_778_659_200_000  # 2026-05-13 08:00:00 UTC
CHAIN_CLOCKS: Final[Mapping[int, tuple[int, int]]] = {
    1: (12_000, 23_900_000),
    14: (750, 98_000_000),
    16: (400, 416_995_878),
    199: (2_000, 38_000_000),
}
"""Block time (ms) and the block height (Solana: slot) at 2026-05-13 08:00 UTC, per chain."""

# Median gas of a transaction in the native coin's raw unit, and the sigma of its log.
_GAS: Final[Mapping[int, tuple[float, float]]] = {
    1: (2.0e14, 0.7),  # ~0.0002 ETH
    14: (1.5e13, 0.5),  # ~0.000015 BNB
    16: (4.0e4, 1.0),  # 5,000 lamports plus a priority fee
    199: (3.0e12, 0.8),  # L2 execution plus the L1 data fee
}
_ARB_PER_S: Final[Mapping[int, float]] = {1: 0.5, 14: 0.9, 16: 0.9, 199: 0.7}
_SIZE_MULT: Final[Mapping[int, float]] = {1: 3.0, 14: 1.0, 16: 0.7, 199: 0.8}  # gas shapes sizes
_TRANSFERS_PER_S: Final = 0.06  # plain wallet-to-wallet transfers, per chain
_MIN_LIQUIDITY: Final = 1_000  # LP shares locked forever at a pool's first deposit
_SHIFT: Final = 24  # an intent's sort key is its time << _SHIFT | its sequence number

# Trader classes: a wallet's class is its strongest tag.
RETAIL, BOT, WHALE, SMART, KOL, SNIPER, BUNDLER, DEV, EXCHANGE = range(9)
_CLASS_OF_TAG: Final = (
    ("dev", DEV),
    ("whale", WHALE),
    ("kol", KOL),
    ("smart_money", SMART),
    ("sniper", SNIPER),
    ("bundler", BUNDLER),
    ("bot", BOT),
)
# Who buys a meme, and who trades the majors (shares of swaps, by class).
_MEME_BUYERS: Final = (0.50, 0.25, 0.02, 0.05, 0.03, 0.08, 0.05, 0.0)
_MAJOR_TRADERS: Final = (0.50, 0.38, 0.04, 0.06, 0.01, 0.0, 0.01, 0.0)
# Trade sizes in USD: median and sigma of the log (whales: Pareto from the median).
_MEME_SIZE: Final = (
    (90.0, 1.2),
    (35.0, 0.9),
    (8_000.0, 0.0),
    (1_800.0, 0.8),
    (1_200.0, 0.8),
    (400.0, 1.0),
    (250.0, 1.0),
    (500.0, 1.0),
)
_MAJOR_SIZE: Final = (
    (700.0, 1.4),
    (400.0, 1.0),
    (60_000.0, 0.0),
    (8_000.0, 0.9),
    (3_000.0, 1.0),
    (1_000.0, 1.0),
    (500.0, 1.0),
    (1_000.0, 1.0),
)
_WHALE_ALPHA: Final = 1.5
# How willing a holder of each class is to be the seller picked for a sell.
_SELL_ACCEPT: Final = (1.0, 1.0, 0.3, 0.8, 0.8, 1.0, 1.0, 0.05, 0.0)
# Starting wallets, USD: native coin, and quote tokens (wrapped native and stablecoins).
_NATIVE_USD: Final = (150.0, 3_000.0, 300e3, 20e3, 15e3, 4e3, 800.0, 3e3)
_QUOTE_USD: Final = (600.0, 40e3, 2e6, 150e3, 50e3, 20e3, 5e3, 20e3)
_EXCHANGE_USD: Final = 4e8  # per token, and of native coin
# A meme's genesis holders: weight of each class (times a Pareto draw).
_HOLDER_WEIGHT: Final = (1.0, 0.5, 25.0, 5.0, 4.0, 3.0, 8.0, 0.0)

_ROUTED: Final = 0.12  # share of organic swaps sent by a relayer
_DUST: Final = 0.01  # share of organic swaps worth under a cent
_ORGANIC_CAP: Final = 0.1  # of the reserve in, for one ordinary meme trade
_MEME_BUY_CAP: Final = 0.15  # of the quote reserve, for a sniper's or a KOL's buy
_MEME_SELL_CAP: Final = 0.3  # of the meme reserve, for a dev's dump
_MAJOR_CAP: Final = 0.03  # of the reserve in, for one major trade
_BACKRUN: Final = 0.001  # of the reserve in: a major trade this big gets backrun
_FULL_DEPTH_USD: Final = 200_000.0  # meme pools this deep get full-size trades
_REVERT: Final = 0.2  # pull of the buy probability per unit of log(price / fair value)
_FAIR_SIGMA: Final = 0.25  # of a meme's log fair value, per square-root hour
# ...pulled back toward its launch value over about a day, so a week of history
# leaves a meme within a few times of where it was launched.
_FAIR_PULL_S: Final = 86_400.0

# Bursts: per-pool arrivals per second, median size (excess rate, multiples of
# the base rate), and decay time in s; chain-wide waves the same.
_MEME_BURST: Final = (1 / 300, 5.0, 40.0)
_MAJOR_BURST: Final = (1 / 600, 2.0, 60.0)
_WAVE: Final = (1 / 900, 2.5, 120.0)
_BURST_SIGMA: Final = 0.8
_MEAN_WAVE: Final = _WAVE[0] * _WAVE[1] * exp(_BURST_SIGMA**2 / 2) * _WAVE[2]
_BIAS_DECAY_S: Final = 120.0
# A meme's lifecycle events come in proportion to how much it trades: one KOL
# call per this many of its swaps (at activity 1.0), one dev dump, one fat finger.
_KOL_EVERY: Final = 400.0
_DUMP_EVERY: Final = 800.0
_FAT_FINGER_EVERY: Final = 1500.0
_XARB_PER_S: Final = 0.2
# Cross-pool arbitrage: a swap that opens a gap between a meme's pools is
# backrun in its own block this often; otherwise a bot closes it a few blocks on.
_BACKRUN_SAME_BLOCK: Final = 0.85
_ARB_LAG_BLOCKS: Final = 1.0  # mean extra blocks before a late arbitrage
_WIDE_GAP: Final = 0.02  # beyond the fees: always backrun in the same block
_DIP_SHARE: Final = 0.1  # smart-money buys per swap of the meme, while it is in a dip
_DIP: Final = 0.88  # price under this fraction of the ten-minute average is a dip
_EMA_S: Final = 600.0
_MEME_LIQ_PER_S: Final = 1 / 1200
_MAJOR_LIQ_PER_S: Final = 1 / 400

# What an intent does.
_SWAP, _ARB, _XARB, _LIQ, _XFER, _KOL, _DUMP, _FAT, _DIP_BUY, _SNIPE, _MIGRATE = range(11)

_TS: Final = attrgetter("ts")


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """What a constant-product pool pays out for ``amount_in`` (Uniswap V2's ``getAmountOut``).

    Args:
        amount_in: raw amount sent to the pool.
        reserve_in: the pool's raw reserve of the token sent.
        reserve_out: its raw reserve of the token paid out.
        fee_bps: the pool's fee, in basis points of the amount in.

    Returns:
        The raw amount out, rounded down.
    """
    x = amount_in * (10_000 - fee_bps)
    return x * reserve_out // (reserve_in * 10_000 + x)


def _mean_lognormal(median: float, sigma: float) -> float:
    return median * exp(sigma * sigma / 2.0)


class _Token:
    __slots__ = (
        "address",
        "anchor",
        "arb_due",
        "bal",
        "cmc",
        "creator",
        "ema",
        "fair",
        "holders",
        "info",
        "pools",
        "rate",
        "scale",
        "usd",
    )

    def __init__(self, info: TokenInfo) -> None:
        self.info = info
        self.address = info.address
        self.scale = float(10**info.decimals)
        self.cmc = info.cmc_id
        self.creator = info.creator
        self.usd = 0.0  # reference tokens: the market price; memes: unused
        self.bal: dict[str, int] = {}
        self.holders: list[str] = []  # every wallet that ever received it, first receipt first
        self.pools: list[_Pool] = []  # active pools, the main one first
        self.ema = 0.0  # memes: ten-minute average USD price in the main pool
        self.fair = 0.0  # memes: the USD price the market leans back to; a random walk
        self.rate = 0.0  # memes: expected swaps per second at activity 1.0, all pools
        self.arb_due = False  # memes: a bot's cross-pool arbitrage is scheduled
        self.anchor = 0.0  # memes: the launch price, where ``fair`` leans back to


class _Pool:
    __slots__ = (
        "active",
        "address",
        "bias",
        "burst",
        "ch",
        "decay",
        "excess",
        "fee",
        "fee_bps",
        "info",
        "lp",
        "meme",
        "meme0",
        "quote",
        "r0",
        "r1",
        "rate",
        "shares",
        "t0",
        "t1",
    )

    def __init__(self, info: PoolInfo, ch: _Chain, t0: _Token, t1: _Token) -> None:
        self.info = info
        self.ch = ch
        self.address = info.address
        self.t0 = t0
        self.t1 = t1
        self.fee_bps = info.fee_bps
        self.fee = 10_000 - info.fee_bps
        self.r0 = 0
        self.r1 = 0
        self.shares = 0
        self.lp: dict[str, int] = {}
        self.active = False
        meme = t0 if t0.cmc is None else t1 if t1.cmc is None else None
        self.meme = meme
        self.meme0 = meme is t0
        self.quote = t1 if meme is t0 else t0
        burst = _MEME_BURST if meme is not None else _MAJOR_BURST
        self.burst = burst
        self.decay = exp(-1.0 / burst[2])
        # Bursts add this much to the base rate on average: the base rate is
        # scaled down by it, so the mean is the pool's ``activity``, and a pool
        # starts at its mean excess, so the rate is right from the first second.
        mean_excess = burst[0] * _mean_lognormal(burst[1], _BURST_SIGMA) * burst[2]
        self.rate = info.activity / (1.0 + mean_excess + _MEAN_WAVE)  # base swaps/s
        self.excess = mean_excess
        self.bias = 0.5  # probability that a swap buys the meme


class _Chain:
    __slots__ = (
        "arb_p",
        "arber",
        "b",
        "blk",
        "block_ms",
        "by_class",
        "cls_of",
        "exchange",
        "gas_floor",
        "gas_table",
        "h0",
        "id",
        "log",
        "memes",
        "native",
        "native_cmc",
        "native_scale",
        "out",
        "pools",
        "refs",
        "relayers",
        "size_mult",
        "solana",
        "ts",
        "ts0",
        "wallets",
        "wave",
    )

    def __init__(self, world: DexWorld, chain: int) -> None:
        self.id = chain
        self.solana = chain == SOLANA
        self.block_ms, height = CHAIN_CLOCKS[chain]
        # Block b (counted from the anchor) starts at ts0 + b·block_ms.
        self.ts0 = _ANCHOR_TS
        self.h0 = height
        self.b = -(1 << 62)
        self.blk = 0
        self.ts = 0
        self.log = 0
        self.out: list[DexEvent] = []
        self.exchange = world.exchanges[chain]
        _, self.native_cmc, decimals = NATIVE[chain]
        self.native_scale = float(10**decimals)
        self.native: dict[str, int] = {}
        self.gas_table: list[int] = []  # gas of a transaction, by 12 random bits
        self.gas_floor = 0  # a wallet under this many raw units is topped up first
        self.arb_p = _ARB_PER_S.get(chain, 0.7)
        self.size_mult = _SIZE_MULT.get(chain, 1.0)
        self.wallets: list[str] = []
        self.by_class: list[list[str]] = [[] for _ in range(9)]
        self.cls_of: dict[str, int] = {}
        # A creator trades as a dev whether or not its listing names it.
        creators = {t.creator for t in world.memes(chain)}
        for w in world.wallets_on(chain):
            cls = RETAIL
            if w.address == self.exchange:
                cls = EXCHANGE
            elif w.address in creators:
                cls = DEV
                self.wallets.append(w.address)
            else:
                for tag, c in _CLASS_OF_TAG:
                    if tag in w.tags:
                        cls = c
                        break
                self.wallets.append(w.address)
            self.cls_of[w.address] = cls
            self.by_class[cls].append(w.address)
        bots = self.by_class[BOT] or self.by_class[RETAIL]
        self.arber = bots[0]
        self.relayers = bots[1:] or bots
        self.pools: list[_Pool] = []  # active pools
        self.memes: list[_Token] = []
        self.refs: list[_Token] = []
        self.wave = _MEAN_WAVE

    def pick(self, cls: int, rnd: float) -> str:
        """A wallet of class ``cls`` (retail when the chain has none), from a uniform draw."""
        group = self.by_class[cls] or self.by_class[RETAIL]
        return group[int(rnd * len(group))]


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total = sum(weights)
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


class DexSimulator:
    """Raw DEX events for a world: a genesis, then steps through simulated time.

    The same world, seed, activity, and sequence of calls (times and prices)
    give the identical event stream.

    Args:
        world: the world to simulate.
        seed: seed of every random draw.
        activity: multiplies the rate of every flow (swaps, liquidity,
            transfers); 1.0 averages about four swaps per simulated second.

    Raises:
        ValueError: when ``activity`` is negative.
    """

    def __init__(self, world: DexWorld, *, seed: int = 0, activity: float = 1.0) -> None:
        if activity < 0:
            raise ValueError("activity must not be negative")
        self._world = world
        self._seed = seed
        self._activity = activity
        self.swaps = 0  # swaps executed since genesis, pending ones included
        self._gen: int | None = None
        self._reset()

    def _reset(self) -> None:
        rng = random.Random(f"cmcstream.dex:{self._seed}")
        self._rng = rng
        self._random = rng.random
        self._gauss = rng.gauss
        self._bits = rng.getrandbits
        world = self._world
        # Tables that keep per-transaction work to a few operations: standard
        # normals for trade sizes (drawn by 14 random bits), gas, signatures.
        self._normals = [rng.gauss(0.0, 1.0) for _ in range(1 << 14)]
        normals = self._normals[:4096]
        self._sig_head = [
            B58_ALPHABET[rng.randrange(1, 5)] + "".join(rng.choices(B58_ALPHABET, k=10))
            for _ in range(4096)
        ]
        self._sig_body = ["".join(rng.choices(B58_ALPHABET, k=11)) for _ in range(4096)]
        self._chains = [_Chain(world, c) for c in world.chains]
        for ch in self._chains:
            median, sigma = _GAS.get(ch.id, (1e12, 0.8))
            ch.gas_table = [max(1, int(median * exp(sigma * z))) for z in normals]
            ch.gas_floor = int(median * 50)
        self._native_usd: dict[int, float] = {}
        self._chain_of = {ch.id: ch for ch in self._chains}
        # What each intent kind does, indexed by kind (_SWAP … _MIGRATE).
        self._handlers: tuple[Callable[[int, Any], None], ...] = (
            self._when_active(self._organic),
            self._arb,
            self._xarb_due,
            self._when_active(self._liquidity),
            self._plain_transfer,
            self._kol,
            self._dump,
            self._fat_finger,
            self._dip_buy,
            self._snipe,
            self._migrate,
        )
        self._tokens: dict[tuple[int, str], _Token] = {}
        for info in world.tokens:
            tok = _Token(info)
            self._tokens[(info.chain, info.address)] = tok
            ch = self._chain_of[info.chain]
            (ch.refs if info.cmc_id is not None else ch.memes).append(tok)
        for p in world.pools:
            for address in (p.token0, p.token1):
                self._tokens[(p.chain, address)].rate += p.activity
        self._pools: dict[tuple[int, str], _Pool] = {}
        self._sched: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self._meme_buy = _cumulative(_MEME_BUYERS)
        self._major_buy = _cumulative(_MAJOR_TRADERS)
        self._gen = None
        self._last = 0
        self._tick_end = 0  # end of the tick being executed (ms)
        self._tick_ms = TICK_MS
        self._thin = 1.0  # trades are this many times fewer...
        self._grow = 1.0  # ...and this many times larger
        self.swaps = 0

    # -- public state ------------------------------------------------------------------------

    @property
    def world(self) -> DexWorld:
        """The simulated world."""
        return self._world

    @property
    def activity(self) -> float:
        """The multiplier of every flow's rate."""
        return self._activity

    def reserves(self, chain: int, pool: str) -> tuple[int, int]:
        """A pool's raw reserves ``(token0, token1)``; zeros for a pool not created yet.

        Raises:
            KeyError: when the world has no such pool.
        """
        p = self._pools.get((chain, pool))
        if p is None:
            self._world.pool(chain, pool)
            return (0, 0)
        return (p.r0, p.r1)

    def balance(self, chain: int, token: str, wallet: str) -> int:
        """A wallet's raw balance of a token (pools excluded: see :meth:`reserves`)."""
        return self._tokens[(chain, token)].bal.get(wallet, 0)

    def native_balance(self, chain: int, wallet: str) -> int:
        """A wallet's raw balance of the chain's native coin."""
        return self._chain_of[chain].native.get(wallet, 0)

    def pending(self) -> list[DexEvent]:
        """Events already executed but stamped after the last step's time, in time order.

        The next :meth:`step` returns them. The balances and reserves this
        simulator reports include them: the books after ``genesis``, every
        ``step`` and these events are the simulator's books.
        """
        return sorted(itertools.chain.from_iterable(ch.out for ch in self._chains), key=_TS)

    def arbitrage_open(self, chain: int, token: str) -> bool:
        """Whether a meme's pools are apart by more than fees plus gas: a bot would
        trade them back now. Always false for a token with fewer than two pools.

        Raises:
            KeyError: when the world has no such token.
        """
        return self._arbitrage(self._tokens[(chain, token)]) is not None

    def is_active(self, chain: int, pool: str) -> bool:
        """Whether a pool takes trades (created and not migrated away from)."""
        p = self._pools.get((chain, pool))
        return p is not None and p.active

    # -- prices ------------------------------------------------------------------------------

    def _set_prices(self, prices: Mapping[int, float]) -> None:
        for ch in self._chains:
            for tok in ch.refs:
                assert tok.cmc is not None
                price = prices.get(tok.cmc)
                if price is not None and price > 0:
                    tok.usd = price
                elif tok.usd <= 0:
                    tok.usd = DEFAULT_PRICES.get(tok.cmc, 1.0)
        # The native coin trades at its wrapped token's price.
        self._native_usd = {
            ch.id: next(t.usd for t in ch.refs if t.cmc == ch.native_cmc) for ch in self._chains
        }

    # -- genesis -----------------------------------------------------------------------------

    def backfill(self, now_ms: int, prices: Mapping[int, float]) -> Iterator[DexEvent]:
        """What the feed starts from (:class:`~cmcstream.sources.base.Source`): the genesis."""
        return self.genesis(now_ms, prices)

    def genesis(self, now_ms: int, prices: Mapping[int, float]) -> Iterator[DexEvent]:
        """The world as it stands at ``now_ms``, with no history before it.

        In order: a :class:`TokenListed` per token, a :class:`WalletLabeled` per
        tagged wallet, a :class:`NativeBalanceChanged` per wallet, the mints of
        every starting balance, every :class:`PoolCreated`, each pool's first
        liquidity (its two token transfers, then the ``add``), and the spread of
        each meme's supply from its creator to its holders. Everything is stamped
        with each chain's last block at or before ``now_ms``. Restarts the
        simulation: the next :meth:`step` continues from ``now_ms``.

        Args:
            now_ms: the start of the simulation (epoch ms).
            prices: USD prices by CoinMarketCap id (at least the chains' native
                coins and stablecoins; missing ones fall back to
                :data:`DEFAULT_PRICES`). They set the pools' starting prices.

        Returns:
            The events, all computed before the first is returned.
        """
        return iter(self._genesis(now_ms, prices, now_ms))

    def _genesis(self, now_ms: int, prices: Mapping[int, float], live_ms: int) -> list[DexEvent]:
        """:meth:`genesis`, with the migrations due ``after_ms`` from ``live_ms``."""
        self._reset()
        self._tick_end = now_ms
        self._set_prices(prices)
        rng = self._rng
        out: list[DexEvent] = []
        chains = self._chains
        for ch in chains:
            ch.out = out
            self._block_at(ch, now_ms, ceil=False)
        world = self._world
        for token in world.tokens:
            ch = self._chain_of[token.chain]
            out.append(
                TokenListed(
                    token.chain,
                    token.address,
                    token.symbol,
                    token.name,
                    token.decimals,
                    token.listed_supply,
                    token.listed_creator,
                    ch.ts,
                    # The unknown-supply tokens are valued nowhere either, as in
                    # the documentation's example (``mc`` and ``lu`` both null).
                    token.supply_known,
                )
            )
        for info in world.wallets:
            if info.tags:
                out.append(WalletLabeled(info.chain, info.address, info.tags))
        # Native coin: log-normal per class around a class median, in USD.
        for ch in chains:
            price = self._native_usd[ch.id]
            for w, cls in ch.cls_of.items():
                usd = _EXCHANGE_USD if cls == EXCHANGE else _NATIVE_USD[cls] * exp(rng.gauss(0, 1))
                amount = int(usd / price * ch.native_scale)
                ch.native[w] = amount
                out.append(NativeBalanceChanged(ch.id, ch.blk, ch.ts, w, amount))
        # Quote tokens: the exchange holds plenty of each; wallets hold the
        # wrapped native coin and a stablecoin or two.
        for ch in chains:
            self._mint_quotes(ch)
        pools = self._plan_pools()
        for ch in chains:
            for tok in ch.memes:
                assert tok.creator is not None
                self._mint(ch, tok, tok.creator, tok.info.total_supply)
        for pool, _, _ in pools:
            ch = pool.ch
            out.append(
                PoolCreated(
                    ch.id,
                    ch.blk,
                    ch.ts,
                    self._tx(ch),
                    pool.address,
                    pool.info.dex,
                    pool.t0.address,
                    pool.t1.address,
                    pool.fee_bps,
                )
            )
        for pool, provider, (a0, a1) in pools:
            self._add_liquidity(pool.ch, self._tx(pool.ch), pool, provider, a0, a1, "add")
        for ch in chains:
            for tok in ch.memes:
                self._distribute(ch, tok)
                if tok.pools:
                    tok.ema = tok.fair = tok.anchor = self._meme_usd(tok.pools[0])
        # Fresh memes draw snipers in their first seconds; migrations come on schedule.
        for ch in chains:
            for tok in ch.memes:
                if tok.info.fresh and tok.pools:
                    self._schedule_snipers(tok.pools[0], now_ms)
        for i, m in enumerate(world.migrations):
            self._schedule(live_ms + m.after_ms, _MIGRATE, i)
        for ch in chains:
            ch.out = []
        self._gen = now_ms
        self._last = now_ms
        return out

    def warm_up(
        self, start_ms: int, prices_at: Callable[[int], Mapping[int, float]]
    ) -> Iterator[tuple[Mapping[int, float], list[DexEvent]]]:
        """The world's genesis a week before ``start_ms`` and its trading up to it.

        Every rolling window (up to a pool's seven days), holder and position
        is then full at ``start_ms``, from the same events a chain would have
        shown. To keep this quick, older history is thinned (:data:`WARM_UP`):
        the last 10 minutes trade at the full rate; back to four hours one
        trade in 16, twice the size; back to a day one in 128, four times the
        size; back to a week one in 2,048, eight times the size. Older windows
        so carry fewer trades and less volume per hour than the live stream
        (an eighth, a 32nd, a 256th), with prices that move as much. Arbitrage
        runs throughout. With ``activity`` above 1 the history is thinned that
        many times more, so it costs the same. The week starts at the first minute at or before
        ``start_ms`` − 7 d, when every token is listed and every pool created
        (snipers buy the fresh meme then); migrations still come ``after_ms``
        after ``start_ms``. The next :meth:`step` continues from ``start_ms``.

        Args:
            start_ms: when the history ends and live trading begins (epoch ms).
            prices_at: the market's USD prices by CoinMarketCap id at a time
                (see :meth:`step`); read once per batch.

        Returns:
            Batches in time order, each the prices it was generated at and its
            events; the first batch is the genesis. A batch is computed when
            it is asked for.
        """
        begin = start_ms - WARM_UP[0][0]
        begin -= begin % _MINUTE
        prices = prices_at(begin)
        yield prices, self._genesis(begin, prices, start_ms)
        try:
            for i, (_, tick_ms, thin, grow) in enumerate(WARM_UP):
                # A storm's warm-up costs what a quiet world's does: its history
                # trades at most at the rate of ``activity`` 1.
                self._tick_ms, self._grow = tick_ms, grow
                self._thin = thin * max(1.0, self._activity)
                end = start_ms - WARM_UP[i + 1][0] if i + 1 < len(WARM_UP) else start_ms
                end -= end % tick_ms
                batch_ms = 5 * tick_ms
                t = self._last
                while t < end:
                    t = min(t + batch_ms - t % batch_ms, end)
                    prices = prices_at(t)
                    yield prices, list(self.step(t, prices))
            if self._last < start_ms:
                prices = prices_at(start_ms)
                self._tick_ms, self._thin, self._grow = TICK_MS, 1.0, 1.0
                yield prices, list(self.step(start_ms, prices))
        finally:
            self._tick_ms, self._thin, self._grow = TICK_MS, 1.0, 1.0

    def _mint_quotes(self, ch: _Chain) -> None:
        rng = self._rng
        wrapped = [t for t in ch.refs if t.cmc == ch.native_cmc]
        stables = [t for t in ch.refs if t.info.cmc_id in (825, 3408, 4943)]
        for tok in ch.refs:
            self._mint(ch, tok, ch.exchange, int(_EXCHANGE_USD / tok.usd * tok.scale))
        for w in ch.wallets:
            cls = ch.cls_of[w]
            usd = _QUOTE_USD[cls] * exp(rng.gauss(0.0, 1.0))
            native_share = rng.uniform(0.2, 0.8)
            for tok in wrapped:
                self._mint(ch, tok, w, int(usd * native_share / tok.usd * tok.scale))
            if stables:
                tok = rng.choice(stables)
                self._mint(ch, tok, w, int(usd * (1 - native_share) / tok.usd * tok.scale))

    def _plan_pools(self) -> list[tuple[_Pool, str, tuple[int, int]]]:
        """Create every genesis pool; mint what its first provider needs; return the plan."""
        rng = self._rng
        plan: list[tuple[_Pool, str, tuple[int, int]]] = []
        need: dict[tuple[int, str], dict[str, int]] = {}  # (chain, token) → provider → raw
        for info in self._world.pools:
            ch = self._chain_of[info.chain]
            pool = self._new_pool(info)
            t0, t1 = pool.t0, pool.t1
            meme = pool.meme
            if meme is None:
                # Majors: a whale provides, at the market price.
                whales = ch.by_class[WHALE] or ch.wallets
                provider = whales[rng.randrange(len(whales))]
                a0 = int(info.depth_usd / 2 / t0.usd * t0.scale)
                a1 = int(info.depth_usd / 2 / t1.usd * t1.scale)
            else:
                assert meme.creator is not None
                assert meme.info.price_usd is not None
                provider = meme.creator
                quote = pool.quote
                # Both sides worth half the depth, at the meme's launch price;
                # never more than a fifth of the supply in one pool.
                m = min(
                    int(info.depth_usd / 2 / meme.info.price_usd * meme.scale),
                    meme.info.total_supply // 5,
                )
                q = int(m / meme.scale * meme.info.price_usd / quote.usd * quote.scale)
                a0, a1 = (m, q) if pool.meme0 else (q, m)
            for tok, amount in ((t0, a0), (t1, a1)):
                if tok.cmc is not None:
                    by = need.setdefault((ch.id, tok.address), {})
                    by[provider] = by.get(provider, 0) + amount
            plan.append((pool, provider, (a0, a1)))
            meme_tok = pool.meme
            if meme_tok is not None:
                meme_tok.pools.append(pool)
        for (chain, address), by in need.items():
            ch = self._chain_of[chain]
            tok = self._tokens[(chain, address)]
            for provider, amount in by.items():
                self._mint(ch, tok, provider, amount)
        # A meme's main pool (against the wrapped native coin) leads its list.
        for ch in self._chains:
            for tok in ch.memes:
                tok.pools.sort(key=lambda p: p.quote.cmc != ch.native_cmc)
        return plan

    def _new_pool(self, info: PoolInfo) -> _Pool:
        ch = self._chain_of[info.chain]
        t0 = self._tokens[(info.chain, info.token0)]
        t1 = self._tokens[(info.chain, info.token1)]
        pool = _Pool(info, ch, t0, t1)
        pool.active = True
        self._pools[(info.chain, info.address)] = pool
        ch.pools.append(pool)
        return pool

    def _distribute(self, ch: _Chain, tok: _Token) -> None:
        """Spread a meme from its creator: heavy-tailed holders, the dev keeps a few %."""
        rng = self._rng
        creator = tok.creator
        assert creator is not None
        supply = tok.info.total_supply
        keep = int(supply * rng.uniform(0.02, 0.12))
        spread = tok.bal.get(creator, 0) - keep
        if spread <= 0:
            return
        reach = rng.uniform(0.15, 0.6)
        holders: list[tuple[str, float]] = []
        for w in ch.wallets:
            cls = ch.cls_of[w]
            weight = _HOLDER_WEIGHT[cls]
            if weight <= 0:
                continue
            # Whales and bundlers are in almost every launch; retail in some.
            if rng.random() > (0.8 if cls in (WHALE, BUNDLER) else reach):
                continue
            holders.append((w, weight * (1.0 - rng.random()) ** (-1 / 1.2)))
        if not holders:
            return
        total = sum(h[1] for h in holders)
        amounts = [int(spread * h[1] / total) for h in holders]
        for (w, _), amount in zip(holders, amounts, strict=True):
            if amount > 0:
                self._send(ch, self._tx(ch), tok, creator, w, amount)

    def _schedule_snipers(self, pool: _Pool, from_ms: int) -> None:
        rng = self._rng
        for _ in range(rng.randint(3, 7)):
            self._schedule(from_ms + rng.randint(300, 15_000), _SNIPE, pool)

    def _schedule(self, t: int, kind: int, arg: Any) -> None:
        # The tick being executed has drawn its arrivals already: anything
        # scheduled from inside it happens in a later tick, so time never runs back.
        t = max(t, self._tick_end + 1)
        self._seq += 1
        heapq.heappush(self._sched, (t, self._seq, kind, arg))

    # -- stepping ----------------------------------------------------------------------------

    def step(self, now_ms: int, prices: Mapping[int, float]) -> Iterator[DexEvent]:
        """Everything that happened after the previous call, up to ``now_ms``.

        Events come in time order (by block time; on a tie, chain by chain in
        the world's order, then in execution order), each stamped with its
        block and block time. A call at or before the previous one yields
        nothing.

        Args:
            now_ms: the current simulated time (epoch ms).
            prices: USD prices by CoinMarketCap id; arbitrage steers the major
                pools to them (missing ones keep their last value).

        Returns:
            The events, all computed before the first is returned.

        Raises:
            RuntimeError: before :meth:`genesis`.
        """
        gen = self._gen
        if gen is None:
            raise RuntimeError("DexSimulator.genesis() must run before step()")
        if now_ms <= self._last:
            return iter(())
        self._set_prices(prices)
        while gen < now_ms:
            hi = (gen // self._tick_ms + 1) * self._tick_ms
            self._tick_end = hi
            self._tick(gen, hi)
            gen = hi
        self._gen = gen
        self._last = now_ms
        ready: list[list[DexEvent]] = []
        for ch in self._chains:
            out = ch.out
            cut = len(out)
            while cut and out[cut - 1].ts > now_ms:  # type: ignore[union-attr]
                cut -= 1
            if cut == len(out):
                ready.append(out)
                ch.out = []
            elif cut:
                ready.append(out[:cut])
                ch.out = out[cut:]
        if len(ready) <= 1:
            return iter(ready[0] if ready else ())
        # Each chain's events are in time order already: a stable sort merges
        # the runs in C, keeping the world's chain order on ties.
        return iter(sorted(itertools.chain.from_iterable(ready), key=_TS))

    def _tick(self, lo: int, hi: int) -> None:
        """Draw the arrivals of ``(lo, hi]`` and execute them in time order."""
        rnd = self._random
        gauss = self._gauss
        act = self._activity / self._thin
        dt = hi - lo
        dts = dt / 1000.0
        keys: list[int] = []
        acts: list[tuple[int, Any]] = []

        def at(kind: int, arg: Any) -> None:
            keys.append((lo + 1 + int(rnd() * dt)) << _SHIFT | len(acts))
            acts.append((kind, arg))

        sched = self._sched
        while sched and sched[0][0] <= hi:
            t, _, kind, arg = heapq.heappop(sched)
            keys.append(t << _SHIFT | len(acts))
            acts.append((kind, arg))
        bias_keep = exp(-dts / _BIAS_DECAY_S)
        fair_step = _FAIR_SIGMA * sqrt(dts / 3600.0)
        fair_pull = min(1.0, dts / _FAIR_PULL_S)
        for ch in self._chains:
            ch.wave *= exp(-dts / _WAVE[2])
            if rnd() < _WAVE[0] * dts:
                ch.wave += _WAVE[1] * exp(_BURST_SIGMA * gauss(0.0, 1.0))
            wave = ch.wave
            arb_p = ch.arb_p * dts
            for pool in ch.pools:
                burst = pool.burst
                excess = pool.excess * pool.decay**dts
                if rnd() < burst[0] * dts:
                    excess += burst[1] * exp(_BURST_SIGMA * gauss(0.0, 1.0))
                pool.excess = excess
                pool.bias = 0.5 + (pool.bias - 0.5) * bias_keep
                lam = pool.rate * (1.0 + excess + wave) * dts * act
                n = self._poisson(lam)
                if n:
                    # Inlined ``at``: there can be thousands per tick in a storm.
                    base = len(acts)
                    keys += [(lo + 1 + int(rnd() * dt)) << _SHIFT | (base + j) for j in range(n)]
                    acts += [(_SWAP, pool)] * n
                is_meme = pool.meme is not None
                liq = (_MEME_LIQ_PER_S if is_meme else _MAJOR_LIQ_PER_S) * dts * act
                for _ in range(self._poisson(liq)):
                    at(_LIQ, pool)
                if not is_meme and rnd() < arb_p:
                    at(_ARB, pool)
            for tok in ch.memes:
                pools = tok.pools
                if not pools:
                    continue
                main = pools[0]
                price = self._meme_usd(main)
                tok.fair *= exp(
                    fair_step * gauss(0.0, 1.0) - fair_pull * log(tok.fair / tok.anchor)
                )
                tok.ema += (price - tok.ema) * min(1.0, dts / _EMA_S)
                rate = tok.rate * dts / self._thin  # KOL calls and dumps are trades too
                if rnd() < rate / _KOL_EVERY:
                    at(_KOL, tok)
                if rnd() < rate / _DUMP_EVERY:
                    at(_DUMP, tok)
                if price < _DIP * tok.ema:
                    for _ in range(self._poisson(rate * _DIP_SHARE * act)):
                        at(_DIP_BUY, tok)
                if len(pools) > 1:
                    if rnd() < _XARB_PER_S * dts:
                        at(_XARB, tok)
                    for _ in range(self._poisson(rate / _FAT_FINGER_EVERY * act)):
                        at(_FAT, tok)
            for _ in range(self._poisson(_TRANSFERS_PER_S * dts * act)):
                at(_XFER, ch)
        keys.sort()
        mask = (1 << _SHIFT) - 1
        handlers = self._handlers
        for key in keys:
            kind, arg = acts[key & mask]
            handlers[kind](key >> _SHIFT, arg)

    def _when_active(self, act: Callable[[int, _Pool], None]) -> Callable[[int, _Pool], None]:
        """``act`` for a pool still trading: a migration earlier in the step may have closed it."""

        def run(t: int, pool: _Pool) -> None:
            if pool.active:
                act(t, pool)

        return run

    def _poisson(self, lam: float) -> int:
        """A Poisson draw: by multiplication for small means, else a rounded normal."""
        if lam <= 0.0:
            return 0
        rnd = self._random
        if lam < 30.0:
            limit = exp(-lam)
            k = 0
            p = rnd()
            while p > limit:
                k += 1
                p *= rnd()
            return k
        return max(0, int(lam + sqrt(lam) * self._gauss(0.0, 1.0) + 0.5))

    # -- prices and sizes --------------------------------------------------------------------

    def _meme_usd(self, pool: _Pool) -> float:
        """USD price of the meme in ``pool``, from its reserves and the quote's market price."""
        meme, quote = pool.meme, pool.quote
        assert meme is not None
        rm, rq = (pool.r0, pool.r1) if pool.meme0 else (pool.r1, pool.r0)
        if rm <= 0:
            return 0.0
        return (rq / quote.scale * quote.usd) / (rm / meme.scale)

    def _size(self, cls: int, table: tuple[tuple[float, float], ...], mult: float) -> float:
        """A trade size in USD for class ``cls``."""
        median, sigma = table[cls]
        mult *= self._grow
        if cls == WHALE:
            return float(median * mult * (1.0 - self._random()) ** (-1.0 / _WHALE_ALPHA))
        return median * mult * exp(sigma * self._normals[self._bits(14)])

    def _class(self, cum: list[float]) -> int:
        return bisect_left(cum, self._random())

    def _holder(self, tok: _Token, ch: _Chain, tries: int = 8) -> str | None:
        """A wallet holding ``tok``, picked with each class's willingness to sell.

        Of the first two willing holders drawn, the larger one sells: big bags
        trade more often than small ones, which keeps sell volume level with
        buy volume although a seller can never sell more than it holds.
        """
        holders = tok.holders
        n = len(holders)
        if not n:
            return None
        rnd = self._random
        bal = tok.bal
        cls_of = ch.cls_of
        found: str | None = None
        for _ in range(tries):
            w = holders[int(rnd() * n)]
            if bal[w] > 0 and rnd() < _SELL_ACCEPT[cls_of[w]]:
                if found is not None:
                    return w if bal[w] > bal[found] else found
                found = w
        return found

    # -- behaviours --------------------------------------------------------------------------

    def _organic(self, t: int, pool: _Pool) -> None:
        """One swap of the pool's ordinary flow: who trades follows the tags."""
        ch = pool.ch
        rnd = self._random
        meme = pool.meme
        dust = rnd() < _DUST
        if meme is None:
            cls = BOT if dust else self._class(self._major_buy)
            trader = ch.pick(cls, rnd())
            zero_in = rnd() < 0.5
            tin = pool.t0 if zero_in else pool.t1
            usd = 10 ** (-4 + 1.8 * rnd()) if dust else self._size(cls, _MAJOR_SIZE, ch.size_mult)
            reserve = pool.r0 if zero_in else pool.r1
            amount = min(int(usd / tin.usd * tin.scale), int(reserve * _MAJOR_CAP))
            if amount > reserve * _BACKRUN:
                # A trade that moves a major pool past its fee band is arbitraged
                # back in the same block (a backrun), as MEV bots do.
                sender = ch.relayers[int(rnd() * len(ch.relayers))] if rnd() < _ROUTED else trader
                self._swap(ch, t, pool, zero_in, amount, trader, sender)
                self._arb(t, pool)
                return
        else:
            quote = pool.quote
            rm, rq = (pool.r0, pool.r1) if pool.meme0 else (pool.r1, pool.r0)
            price = (rq / quote.scale * quote.usd) / (rm / meme.scale)
            # The flow leans against the meme's drift from its fair value, so
            # prices swing (pumps, dumps) without running away.
            buy_p = pool.bias - _REVERT * log(price / meme.fair)
            # People trade less in a thin pool than in a deep one.
            depth = 2.0 * rq / quote.scale * quote.usd
            mult = ch.size_mult * sqrt(min(1.0, depth / _FULL_DEPTH_USD))
            seller = None
            if rnd() >= buy_p:
                # A sell, when a holder is found: selling pressure does not turn
                # into buying when the holders have run short.
                seller = self._holder(meme, ch)
                if seller is None:
                    return
            if seller is None:
                # A buy, paid in the pool's quote token.
                cls = BOT if dust else self._class(self._meme_buy)
                trader = ch.pick(cls, rnd())
                usd = 10 ** (-4 + 1.8 * rnd()) if dust else self._size(cls, _MEME_SIZE, mult)
                amount = min(int(usd / quote.usd * quote.scale), int(rq * _ORGANIC_CAP))
                zero_in = not pool.meme0
            else:
                trader = seller
                cls = ch.cls_of[seller]
                holding = meme.bal[seller]
                usd = 10 ** (-4 + 1.8 * rnd()) if dust else self._size(cls, _MEME_SIZE, mult)
                amount = int(usd / price * meme.scale)
                if not dust and cls in (RETAIL, SNIPER) and holding <= 3 * amount:
                    amount = holding  # out of a small position
                amount = min(amount, holding, int(rm * _ORGANIC_CAP))
                zero_in = pool.meme0
        if amount <= 0:
            return
        sender = trader
        if rnd() < _ROUTED:
            relayers = ch.relayers
            sender = relayers[int(rnd() * len(relayers))]
        self._swap(ch, t, pool, zero_in, amount, trader, sender)

    def _arb(self, t: int, pool: _Pool) -> None:
        """Trade a major pool back to the market price, to the edge of its fee band."""
        if not pool.active:
            return
        t0, t1 = pool.t0, pool.t1
        m = (t0.usd / t0.scale) / (t1.usd / t1.scale)  # market: raw token1 per raw token0
        r0, r1 = pool.r0, pool.r1
        band = pool.fee_bps / 10_000
        s = r1 / r0
        k = float(r0) * float(r1)
        if s > m * (1.0 + band + 0.0005):
            zero_in = True
            amount = int((sqrt(k / (m * (1.0 + band / 2))) - r0) * 10_000 / pool.fee)
        elif s < m * (1.0 - band - 0.0005):
            zero_in = False
            amount = int((sqrt(k * m * (1.0 - band / 2)) - r1) * 10_000 / pool.fee)
        else:
            return
        if amount > 0:
            bot = pool.ch.arber
            self._swap(pool.ch, t, pool, zero_in, amount, bot, bot)

    def _backrun(self, t: int, tok: _Token) -> None:
        """After a swap in one of a meme's pools: a bot arbitrages any gap it opened.

        A wide gap is worth a priority fee and always closes in the swap's own
        block (a backrun); a narrow one usually does, else a block or two later.
        """
        if tok.arb_due:
            return
        gap = self._gap(tok)
        if gap <= 0.0:
            return
        if gap > _WIDE_GAP or self._random() < _BACKRUN_SAME_BLOCK:
            self._xarb(t, tok)
            return
        tok.arb_due = True
        ch = tok.pools[0].ch
        lag = ch.block_ms * (1.0 - _ARB_LAG_BLOCKS * log(1.0 - self._random()))
        self._schedule(t + int(lag), _XARB, tok)

    def _gap(self, tok: _Token) -> float:
        """How far a meme's dearest pool is above its cheapest, beyond their two
        fees (a fraction of the cheaper price; 0.0 within the fees)."""
        lo = hi = 0.0
        fees = 0
        for pool in tok.pools:
            price = self._meme_usd(pool)
            if lo == 0.0 or price < lo:
                lo = price
            if price > hi:
                hi = price
            fees += pool.fee_bps
        if lo <= 0.0:
            return 0.0
        return max(0.0, hi / lo - 1.0 - fees / 10_000)

    def _xarb_due(self, t: int, tok: _Token) -> None:
        tok.arb_due = False
        self._xarb(t, tok)

    def _xarb(self, t: int, tok: _Token) -> None:
        """Buy the meme in its cheapest pool and sell it in its dearest, in one transaction."""
        plan = self._arbitrage(tok)
        if plan is None:
            return
        cheap, dear, pay, got, sell, back = plan
        ch = cheap.ch
        bot = ch.arber
        quote = cheap.quote
        if quote.bal.get(bot, 0) < pay:
            self._fund(ch, t, quote, bot, pay - quote.bal.get(bot, 0))
        self._ensure_native(ch, t, bot)
        tx = self._begin(ch, t)
        self._leg(ch, tx, cheap, not cheap.meme0, pay, got, bot, bot)
        self._leg(ch, tx, dear, dear.meme0, sell, back, bot, bot)
        self._gas(ch, bot)

    def _arbitrage(self, tok: _Token) -> tuple[_Pool, _Pool, int, int, int, int] | None:
        """The cross-pool arbitrage a meme's pools offer now, or ``None``.

        The bot buys in the cheapest pool and sells in the dearest until the
        two marginal prices are one round trip's fees apart, where the last
        unit no longer pays, and trades only when the whole earns more than a
        transaction's median gas: pools stay within fee-plus-gas bounds.

        Returns:
            ``(cheap, dear, pay, got, sell, back)``: quote paid into the cheap
            pool for ``got`` of the meme, ``sell`` of it sold into the dear
            pool for ``back`` of its quote (raw amounts).
        """
        pools = tok.pools
        if len(pools) < 2:
            return None
        prices = [self._meme_usd(p) for p in pools]
        lo = min(range(len(pools)), key=prices.__getitem__)
        hi = max(range(len(pools)), key=prices.__getitem__)
        cheap, dear = pools[lo], pools[hi]
        p_lo, p_hi = prices[lo], prices[hi]
        # A unit bought in A and sold in B nets p_B·(1 − f_B)·(1 − f_A) − p_A.
        keep = cheap.fee * dear.fee / 1e8
        if p_lo <= 0 or p_hi * keep <= p_lo:
            return None
        # After moving Δ of the meme, pool A prices it at kA·qA/(rmA − Δ)² and
        # B at kB·qB/(rmB + Δ)² (q: USD per raw quote unit). With a = √(kA·qA),
        # b = √(kB·qB) and s = √(1/keep), B is 1/keep times A where
        # b/(rmB + Δ) = s·a/(rmA − Δ): at Δ = (b·rmA − s·a·rmB)/(b + s·a). A deep
        # pool barely moves; a thin one does the travelling.
        rm_a, rq_a = (cheap.r0, cheap.r1) if cheap.meme0 else (cheap.r1, cheap.r0)
        rm_b, rq_b = (dear.r0, dear.r1) if dear.meme0 else (dear.r1, dear.r0)
        qa, qb = cheap.quote, dear.quote
        a = sqrt(float(rm_a) * rq_a * qa.usd / qa.scale)
        b = sqrt(float(rm_b) * rq_b * qb.usd / qb.scale)
        sa = a / sqrt(keep)
        delta = int((b * rm_a - sa * rm_b) / (b + sa))
        if delta <= 0 or delta >= rm_a:
            return None
        # Quote to pay for ``delta`` (Uniswap's getAmountIn, rounded up).
        pay = rq_a * delta * 10_000 // ((rm_a - delta) * cheap.fee) + 1
        got = amount_out(pay, rq_a, rm_a, cheap.fee_bps)
        sell = min(got, delta)
        back = amount_out(sell, rm_b, rq_b, dear.fee_bps)
        ch = cheap.ch
        gas_usd = _GAS.get(ch.id, (1e12, 0.8))[0] / ch.native_scale * self._native_usd[ch.id]
        profit = back / qb.scale * qb.usd - pay / qa.scale * qa.usd
        if back <= 0 or profit <= gas_usd:
            return None
        return (cheap, dear, pay, got, sell, back)

    def _kol(self, t: int, tok: _Token) -> None:
        """A KOL buys and calls the meme: a burst of mostly buys follows."""
        main = tok.pools[0]
        ch = main.ch
        kol = ch.pick(KOL, self._random())
        self._buy(t, main, kol, self._size(KOL, _MEME_SIZE, ch.size_mult))
        for pool in tok.pools:
            pool.bias = 0.78
            pool.excess += 5.0 * exp(_BURST_SIGMA * self._gauss(0.0, 1.0))

    def _dump(self, t: int, tok: _Token) -> None:
        """The dev sells part of the bag; a sell-off follows."""
        main = tok.pools[0]
        dev = tok.creator
        assert dev is not None
        holding = tok.bal.get(dev, 0)
        cap = int((main.r0 if main.meme0 else main.r1) * _MEME_SELL_CAP)
        amount = min(int(holding * (0.1 + 0.3 * self._random())), cap)
        if amount <= 0:
            return
        self._swap(main.ch, t, main, main.meme0, amount, dev, dev)
        for pool in tok.pools:
            pool.bias = 0.3
            pool.excess += 2.0 * exp(_BURST_SIGMA * self._gauss(0.0, 1.0))

    def _dip_buy(self, t: int, tok: _Token) -> None:
        main = tok.pools[0]
        ch = main.ch
        wallet = ch.pick(SMART, self._random())
        self._buy(t, main, wallet, self._size(SMART, _MEME_SIZE, ch.size_mult))

    def _snipe(self, t: int, pool: _Pool) -> None:
        if not pool.active:
            return
        ch = pool.ch
        sniper = ch.pick(SNIPER, self._random())
        self._buy(t, pool, sniper, 2.0 * self._size(SNIPER, _MEME_SIZE, ch.size_mult))

    def _fat_finger(self, t: int, tok: _Token) -> None:
        """A buy several times the thinnest pool's quote reserve; a bot backruns it."""
        pools = tok.pools
        thin = min(pools, key=lambda p: p.info.depth_usd)
        ch = thin.ch
        rq = thin.r1 if thin.meme0 else thin.r0
        amount = int(rq * (2.2 + 1.8 * self._random()))
        trader = ch.pick(RETAIL, self._random())
        self._swap(ch, t, thin, not thin.meme0, amount, trader, trader)
        self._xarb(t, tok)

    def _buy(self, t: int, pool: _Pool, trader: str, usd: float) -> None:
        quote = pool.quote
        amount = int(usd / quote.usd * quote.scale)
        cap = int((pool.r1 if pool.meme0 else pool.r0) * _MEME_BUY_CAP)
        amount = min(amount, cap)
        if amount > 0:
            self._swap(pool.ch, t, pool, not pool.meme0, amount, trader, trader)

    def _liquidity(self, t: int, pool: _Pool) -> None:
        """A liquidity add or remove.

        On majors a whale or retail wallet adds; on memes the dev or a holder.
        Any current provider may remove.
        """
        ch = pool.ch
        rnd = self._random
        providers = [w for w, s in pool.lp.items() if s > 0]
        if providers and rnd() < 0.4:
            provider = providers[int(rnd() * len(providers))]
            # Never more than 15 % of the pool at once: active pools stay tradable.
            share = min(int(pool.lp[provider] * (0.1 + 0.9 * rnd())), pool.shares * 15 // 100)
            if share * min(pool.r0, pool.r1) // pool.shares <= 0:
                return
            self._ensure_native(ch, t, provider)
            tx = self._begin(ch, t)
            self._remove_liquidity(ch, tx, pool, provider, share, "remove")
            self._gas(ch, provider)
            return
        frac = exp(log(0.001) + rnd() * log(30.0))  # 0.1 % to 3 % of the pool
        meme = pool.meme
        if meme is None:
            group = WHALE if rnd() < 0.6 else RETAIL
            provider = ch.pick(group, rnd())
            a0 = int(pool.r0 * frac)
        else:
            chosen = meme.creator if rnd() < 0.5 else self._holder(meme, ch)
            if chosen is None:
                return
            provider = chosen
            held = meme.bal.get(provider, 0) // 2
            if pool.meme0:
                a0 = min(int(pool.r0 * frac), held)
            else:
                # Scale the quote side so the meme side fits the holding.
                a0 = min(int(pool.r0 * frac), pool.r0 * held // max(pool.r1, 1))
        a1 = a0 * pool.r1 // pool.r0 + 1
        if a0 <= 0:
            return
        for tok, amount in ((pool.t0, a0), (pool.t1, a1)):
            have = tok.bal.get(provider, 0)
            if have < amount:
                if tok.cmc is None:
                    return
                self._fund(ch, t, tok, provider, amount - have)
        self._ensure_native(ch, t, provider)
        tx = self._begin(ch, t)
        self._add_liquidity(ch, tx, pool, provider, a0, a1, "add")
        self._gas(ch, provider)

    def _plain_transfer(self, t: int, ch: _Chain) -> None:
        """A wallet sends part of a token it holds to another wallet (or the exchange)."""
        rnd = self._random
        tokens = ch.memes if ch.memes and rnd() < 0.7 else ch.refs
        tok = tokens[int(rnd() * len(tokens))]
        sender = self._holder(tok, ch, tries=4)
        if sender is None:
            return
        amount = int(tok.bal[sender] * min(1.0, exp(log(0.01) * rnd())))
        if amount <= 0:
            return
        if tok.cmc is not None and rnd() < 0.2:
            receiver = ch.exchange
        else:
            receiver = ch.wallets[int(rnd() * len(ch.wallets))]
            if receiver == sender:
                return
        self._ensure_native(ch, t, sender)
        tx = self._begin(ch, t)
        self._send(ch, tx, tok, sender, receiver, amount)
        self._gas(ch, sender)

    def _migrate(self, t: int, index: int) -> None:
        """The dev moves the meme's main-pool liquidity to a new pool, in one transaction."""
        m = self._world.migrations[index]
        ch = self._chain_of[m.chain]
        source = self._pools.get((m.chain, m.source))
        if source is None or not source.active:
            return
        tok = self._tokens[(m.chain, m.token)]
        dev = tok.creator
        assert dev is not None
        share = source.lp.get(dev, 0)
        if share <= 0:
            return
        self._ensure_native(ch, t, dev)
        tx = self._begin(ch, t)
        target = self._new_pool(m.target)
        ch.out.append(
            PoolCreated(
                ch.id,
                ch.blk,
                ch.ts,
                tx,
                target.address,
                m.target.dex,
                target.t0.address,
                target.t1.address,
                target.fee_bps,
            )
        )
        got0, got1 = self._remove_liquidity(ch, tx, source, dev, share, "remove")
        # The new pool lists its tokens in its own order.
        by_token = {source.t0.address: got0, source.t1.address: got1}
        self._add_liquidity(
            ch, tx, target, dev, by_token[target.t0.address], by_token[target.t1.address], "migrate"
        )
        self._gas(ch, dev)
        source.active = False
        ch.pools.remove(source)
        tok.pools[tok.pools.index(source)] = target
        target.rate = source.rate
        target.excess = source.excess + 3.0
        self._schedule_snipers(target, t)

    # -- primitives --------------------------------------------------------------------------

    def _block_at(self, ch: _Chain, t: int, *, ceil: bool = True) -> None:
        """Point the chain at the first block at or after ``t``, or with ``ceil`` false,
        the last block at or before it."""
        b = -((ch.ts0 - t) // ch.block_ms) if ceil else (t - ch.ts0) // ch.block_ms
        if b != ch.b:
            ch.b = b
            ch.blk = max(1, ch.h0 + b)
            ch.ts = ch.ts0 + b * ch.block_ms
            ch.log = 0

    def _tx(self, ch: _Chain) -> str:
        """A new transaction hash (EVM) or signature (Solana); restarts Solana's instructions."""
        if ch.solana:
            ch.log = 2  # instructions 0 and 1 set the compute budget
            c = self._bits(96)
            body = self._sig_body
            return (
                self._sig_head[c & 4095]
                + body[c >> 12 & 4095]
                + body[c >> 24 & 4095]
                + body[c >> 36 & 4095]
                + body[c >> 48 & 4095]
                + body[c >> 60 & 4095]
                + body[c >> 72 & 4095]
                + body[c >> 84 & 4095]
            )
        return "0x" + self._bits(256).to_bytes(32, "big").hex()

    def _begin(self, ch: _Chain, t: int) -> str:
        """Start a transaction at time ``t``: its block, and its hash."""
        self._block_at(ch, t)
        return self._tx(ch)

    def _swap(
        self,
        ch: _Chain,
        t: int,
        pool: _Pool,
        zero_in: bool,
        amount_in: int,
        trader: str,
        sender: str,
    ) -> int:
        """One swap in its own transaction; returns the amount out (0: nothing happened).

        A trader short of a reference token is funded from the exchange first;
        a meme can only be sold from holdings.
        """
        if zero_in:
            tin, rin, rout = pool.t0, pool.r0, pool.r1
        else:
            tin, rin, rout = pool.t1, pool.r1, pool.r0
        have = tin.bal.get(trader, 0)
        if have < amount_in and tin.cmc is None:
            amount_in = have
        if amount_in <= 0:
            return 0
        x = amount_in * pool.fee
        out = x * rout // (rin * 10_000 + x)
        if out <= 0:
            return 0
        if have < amount_in:
            self._fund(ch, t, tin, trader, amount_in - have)
        native = ch.native
        if native.get(sender, 0) < ch.gas_floor:
            self._ensure_native(ch, t, sender)
        # What _begin, _leg and _gas do, inlined: this runs once per swap.
        if -((ch.ts0 - t) // ch.block_ms) != ch.b:
            self._block_at(ch, t)
        solana = ch.solana
        tx = self._tx(ch) if solana else "0x" + self._bits(256).to_bytes(32, "big").hex()
        if zero_in:
            tout = pool.t1
            pool.r0 = rin + amount_in
            pool.r1 = rout - out
        else:
            tout = pool.t0
            pool.r1 = rin + amount_in
            pool.r0 = rout - out
        tin.bal[trader] -= amount_in
        bal = tout.bal
        held = bal.get(trader)
        if held is None:
            tout.holders.append(trader)
            bal[trader] = out
        else:
            bal[trader] = held + out
        left = native[sender] - ch.gas_table[self._bits(12)]
        if left < 0:
            left = 0
        native[sender] = left
        c, blk, ts, i = ch.id, ch.blk, ch.ts, ch.log
        ch.log = i + 3
        pa, ain, aout = pool.address, tin.address, tout.address
        emit = ch.out.append
        if solana:
            emit(Transfer(c, blk, ts, tx, ain, trader, pa, amount_in, None, i))
            emit(Transfer(c, blk, ts, tx, aout, pa, trader, out, None, i + 1))
            emit(Swap(c, blk, ts, tx, pa, sender, trader, ain, aout, amount_in, out, None, i + 2))
        else:
            emit(Transfer(c, blk, ts, tx, ain, trader, pa, amount_in, i, None))
            emit(Transfer(c, blk, ts, tx, aout, pa, trader, out, i + 1, None))
            emit(Swap(c, blk, ts, tx, pa, sender, trader, ain, aout, amount_in, out, i + 2, None))
        emit(NativeBalanceChanged(c, blk, ts, sender, left))
        self.swaps += 1
        meme = pool.meme
        if meme is not None and len(meme.pools) > 1:
            self._backrun(t, meme)
        return out

    def _leg(
        self,
        ch: _Chain,
        tx: str,
        pool: _Pool,
        zero_in: bool,
        amount_in: int,
        out: int,
        trader: str,
        sender: str,
    ) -> None:
        """One swap inside transaction ``tx``: token in to the pool, token out to the
        trader, then the swap log. The caller has checked the trader's balance."""
        if zero_in:
            tin, tout = pool.t0, pool.t1
            pool.r0 += amount_in
            pool.r1 -= out
        else:
            tin, tout = pool.t1, pool.t0
            pool.r1 += amount_in
            pool.r0 -= out
        tin.bal[trader] -= amount_in
        bal = tout.bal
        held = bal.get(trader)
        if held is None:
            tout.holders.append(trader)
            bal[trader] = out
        else:
            bal[trader] = held + out
        c, blk, ts, i = ch.id, ch.blk, ch.ts, ch.log
        ch.log = i + 3
        pa, ain, aout = pool.address, tin.address, tout.address
        emit = ch.out.append
        if ch.solana:
            emit(Transfer(c, blk, ts, tx, ain, trader, pa, amount_in, None, i))
            emit(Transfer(c, blk, ts, tx, aout, pa, trader, out, None, i + 1))
            emit(Swap(c, blk, ts, tx, pa, sender, trader, ain, aout, amount_in, out, None, i + 2))
        else:
            emit(Transfer(c, blk, ts, tx, ain, trader, pa, amount_in, i, None))
            emit(Transfer(c, blk, ts, tx, aout, pa, trader, out, i + 1, None))
            emit(Swap(c, blk, ts, tx, pa, sender, trader, ain, aout, amount_in, out, i + 2, None))
        self.swaps += 1

    @staticmethod
    def _credit(tok: _Token, wallet: str, amount: int) -> None:
        bal = tok.bal
        held = bal.get(wallet)
        if held is None:
            tok.holders.append(wallet)
            bal[wallet] = amount
        else:
            bal[wallet] = held + amount

    def _log_transfer(
        self, ch: _Chain, tx: str, token: str, sender: str | None, receiver: str | None, amount: int
    ) -> None:
        """Emit a transfer in ``tx`` at the chain's current block (no book-keeping)."""
        i = ch.log
        ch.log = i + 1
        if ch.solana:
            ch.out.append(
                Transfer(ch.id, ch.blk, ch.ts, tx, token, sender, receiver, amount, None, i)
            )
        else:
            ch.out.append(
                Transfer(ch.id, ch.blk, ch.ts, tx, token, sender, receiver, amount, i, None)
            )

    def _mint(self, ch: _Chain, tok: _Token, wallet: str, amount: int) -> None:
        """A mint to ``wallet`` in a transaction of its own, at the current block."""
        if amount <= 0:
            return
        self._credit(tok, wallet, amount)
        self._log_transfer(ch, self._tx(ch), tok.address, None, wallet, amount)

    def _send(
        self, ch: _Chain, tx: str, tok: _Token, sender: str, receiver: str, amount: int
    ) -> None:
        """Move ``amount`` between two wallets in ``tx``."""
        tok.bal[sender] -= amount
        self._credit(tok, receiver, amount)
        self._log_transfer(ch, tx, tok.address, sender, receiver, amount)

    def _fund(self, ch: _Chain, t: int, tok: _Token, wallet: str, need: int) -> None:
        """A withdrawal from the exchange that covers ``need`` of a reference token, with room."""
        exchange = ch.exchange
        amount = int(need * (1.5 + 4.0 * self._random())) + 1
        if tok.bal.get(exchange, 0) < amount:
            # The issuer (or the bridge) mints to the exchange: reference tokens are plentiful.
            self._block_at(ch, t)
            self._mint(ch, tok, exchange, max(amount, int(_EXCHANGE_USD / tok.usd * tok.scale)))
        self._ensure_native(ch, t, exchange)
        tx = self._begin(ch, t)
        self._send(ch, tx, tok, exchange, wallet, amount)
        self._gas(ch, exchange)

    def _ensure_native(self, ch: _Chain, t: int, wallet: str) -> None:
        """Top up a wallet that may run out of gas: a native deposit from the exchange."""
        native = ch.native
        have = native.get(wallet, 0)
        if have >= ch.gas_floor:
            return
        self._block_at(ch, t)
        exchange = ch.exchange
        if wallet == exchange:
            # From the exchange's cold storage: outside the simulated world.
            amount = int(_EXCHANGE_USD / self._native_usd[ch.id] * ch.native_scale)
            native[wallet] = have + amount
            ch.out.append(NativeBalanceChanged(ch.id, ch.blk, ch.ts, wallet, have + amount))
            return
        amount = int(ch.gas_floor * (4.0 + 16.0 * self._random()))
        if native[exchange] < amount + ch.gas_floor:
            self._ensure_native(ch, t, exchange)
        native[exchange] -= amount + ch.gas_table[0]
        native[wallet] = have + amount
        ch.out.append(NativeBalanceChanged(ch.id, ch.blk, ch.ts, exchange, native[exchange]))
        ch.out.append(NativeBalanceChanged(ch.id, ch.blk, ch.ts, wallet, have + amount))

    def _gas(self, ch: _Chain, sender: str) -> None:
        """The sender of the current transaction pays its gas."""
        native = ch.native
        left = native[sender] - ch.gas_table[self._bits(12)]
        if left < 0:
            left = 0
        native[sender] = left
        ch.out.append(NativeBalanceChanged(ch.id, ch.blk, ch.ts, sender, left))

    def _add_liquidity(
        self, ch: _Chain, tx: str, pool: _Pool, provider: str, a0: int, a1: int, action: str
    ) -> None:
        """Deposit ``a0``/``a1`` of ``provider`` into ``pool`` in ``tx``: two transfers,
        then the liquidity log; LP shares are minted the way Uniswap V2 mints them."""
        t0, t1 = pool.t0, pool.t1
        t0.bal[provider] -= a0
        t1.bal[provider] -= a1
        self._log_transfer(ch, tx, t0.address, provider, pool.address, a0)
        self._log_transfer(ch, tx, t1.address, provider, pool.address, a1)
        if pool.shares == 0:
            minted = isqrt(a0 * a1) - _MIN_LIQUIDITY
            pool.shares = _MIN_LIQUIDITY
        else:
            minted = min(a0 * pool.shares // pool.r0, a1 * pool.shares // pool.r1)
        minted = max(minted, 0)
        pool.shares += minted
        pool.lp[provider] = pool.lp.get(provider, 0) + minted
        pool.r0 += a0
        pool.r1 += a1
        self._log_liquidity(ch, tx, pool, action, provider, a0, a1)

    def _remove_liquidity(
        self, ch: _Chain, tx: str, pool: _Pool, provider: str, share: int, action: str
    ) -> tuple[int, int]:
        """Burn ``share`` of ``provider``'s LP shares in ``tx``: the pool pays both tokens
        out pro rata (two transfers, then the liquidity log). Returns the amounts."""
        a0 = share * pool.r0 // pool.shares
        a1 = share * pool.r1 // pool.shares
        pool.lp[provider] -= share
        pool.shares -= share
        pool.r0 -= a0
        pool.r1 -= a1
        self._credit(pool.t0, provider, a0)
        self._credit(pool.t1, provider, a1)
        self._log_transfer(ch, tx, pool.t0.address, pool.address, provider, a0)
        self._log_transfer(ch, tx, pool.t1.address, pool.address, provider, a1)
        self._log_liquidity(ch, tx, pool, action, provider, a0, a1)
        return (a0, a1)

    def _log_liquidity(
        self, ch: _Chain, tx: str, pool: _Pool, action: str, provider: str, a0: int, a1: int
    ) -> None:
        i = ch.log
        ch.log = i + 1
        log_index, instruction = (None, i) if ch.solana else (i, None)
        ch.out.append(
            LiquidityChanged(
                ch.id,
                ch.blk,
                ch.ts,
                tx,
                pool.address,
                action,
                provider,
                provider,
                a0,
                a1,
                log_index,
                instruction,
            )
        )
