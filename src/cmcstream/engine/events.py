"""Raw events: what a source tells the engine, and nothing derived from it.

A source (the simulator, a recording, an exchange feed) normalizes what it sees
into these immutable records; the engine alone turns them into channel payloads.
Nothing here is a percentage, a rolling sum or a market cap: those are the
engine's to compute, so simulated and real data go through the same arithmetic.

Every time is epoch milliseconds (UTC); every money amount is in USD.

Each event carries a ``kind`` tag so a stream of them can be recorded and
replayed as JSON (``msgspec.json.encode(event)``, decoded as :data:`MarketEvent`).
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

__all__ = [
    "AssetListed",
    "DexEvent",
    "LiquidityChanged",
    "MarketEvent",
    "NativeBalanceChanged",
    "PoolCreated",
    "PriceSeries",
    "SupplyChanged",
    "Swap",
    "TokenListed",
    "Trade",
    "Transfer",
    "WalletLabeled",
]


# ---------------------------------------------------------------------------
# Market events (centralized exchanges; ``market@crypto_latest_price``)
# ---------------------------------------------------------------------------


class AssetListed(msgspec.Struct, frozen=True, tag="asset_listed", tag_field="kind"):
    """An asset enters the universe, or its metadata is restated.

    Listing an asset that is already known replaces its metadata (name, rank,
    supplies, launch) and keeps its price and volume history. A supply that
    changes over time should arrive as :class:`SupplyChanged` instead, so the
    engine can tell what it was 24 hours ago.

    Attributes:
        cid: CoinMarketCap cryptocurrency id.
        symbol: ticker, e.g. ``"BTC"``.
        name: display name, e.g. ``"Bitcoin"``.
        rank: CoinMarketCap rank (1 = largest market cap); decides the push cadence.
        circulating_supply: coins in circulation, or ``None`` when unknown.
        max_supply: hard cap in coins, or ``None`` when uncapped.
        total_supply: coins in existence (circulating plus locked), or ``None``
            when unknown.
        launch_ts: epoch ms of the first known price (``launch_price``).
        launch_price: first known USD price, the reference of the all-time
            change; ``None`` (or a non-positive value) when unknown.
    """

    cid: int
    symbol: str
    name: str
    rank: int
    circulating_supply: float | None
    max_supply: float | None
    total_supply: float | None
    launch_ts: int
    launch_price: float | None


class PriceSeries(msgspec.Struct, frozen=True, tag="price_series", tag_field="kind"):
    """A backfill of history: consecutive bars of one resolution, oldest first.

    Bar ``i`` covers ``[start_ts + i·resolution_ms, start_ts + (i+1)·resolution_ms)``;
    ``closes[i]`` is the price at the end of that bar and ``volumes_usd[i]`` the USD
    volume traded within it, the way an exchange's OHLCV history reads.

    A series is authoritative for the span it covers: it replaces whatever the
    engine held there. Send coarse series before fine ones (daily, then hourly,
    then five-minute) so the finest data wins where they overlap.

    Attributes:
        cid: CoinMarketCap cryptocurrency id.
        resolution_ms: length of one bar, in milliseconds.
        start_ts: epoch ms at which the first bar opens.
        closes: closing USD price of each bar.
        volumes_usd: USD volume of each bar; same length as ``closes``.
    """

    cid: int
    resolution_ms: int
    start_ts: int
    closes: list[float]
    volumes_usd: list[float]


class Trade(msgspec.Struct, frozen=True, tag="trade", tag_field="kind"):
    """An aggregated trade print: the last price and the volume since the previous print.

    Attributes:
        cid: CoinMarketCap cryptocurrency id.
        ts: epoch ms of the print.
        price: last traded USD price.
        volume_usd: USD volume traded since the previous print of this asset.
    """

    cid: int
    ts: int
    price: float
    volume_usd: float


class SupplyChanged(msgspec.Struct, frozen=True, tag="supply_changed", tag_field="kind"):
    """The supply of an asset moved (emission, unlock, burn).

    Attributes:
        cid: CoinMarketCap cryptocurrency id.
        ts: epoch ms from which the new supply holds.
        circulating_supply: new circulating supply, in coins.
        total_supply: new total supply in coins, or ``None`` when it did not change.
    """

    cid: int
    ts: int
    circulating_supply: float
    total_supply: float | None = None


MarketEvent: TypeAlias = AssetListed | PriceSeries | Trade | SupplyChanged
"""Every event the market engine accepts."""


# ---------------------------------------------------------------------------
# DEX events (on-chain; the nine ``onchain@`` channels)
#
# Amounts are raw integers in the token's smallest unit (wei, lamports…), as a
# chain reports them; the engine alone divides by ``10**decimals``. ``chain`` is
# the CoinMarketCap platform id. Addresses are as the chain spells them (EVM
# lower-case hex, Solana base58). An event is located by its transaction and,
# on EVM chains, its log index, on Solana its instruction index.
# ---------------------------------------------------------------------------


class TokenListed(msgspec.Struct, frozen=True, tag="token_listed", tag_field="kind"):
    """A token contract (or mint) with its metadata and creator."""

    chain: int
    address: str
    symbol: str
    name: str
    decimals: int
    total_supply: int
    creator: str | None = None
    ts: int = 0
    # False when the data source cannot value the token's pools (``lu`` is null).
    liquidity_known: bool = True


class PoolCreated(msgspec.Struct, frozen=True, tag="pool_created", tag_field="kind"):
    """A pool appears; its reserves start at zero.

    A constant-product pool (pair) is priced by its reserves. A
    concentrated-liquidity pool (Uniswap V3) states its price itself:
    ``sqrt_price_x96`` is its initial ``sqrt(price) * 2**96`` (price of token0
    in token1, raw units), moved by each :class:`Swap`; its reserves (the
    tokens it holds) then only value it.
    """

    chain: int
    block: int
    ts: int
    tx: str
    pool: str
    dex: str
    token0: str
    token1: str
    fee_bps: int = 30
    sqrt_price_x96: int | None = None


class Swap(msgspec.Struct, frozen=True, tag="swap", tag_field="kind"):
    """One swap in a pool: ``amount_in`` of ``token_in`` for ``amount_out`` of the other."""

    chain: int
    block: int
    ts: int
    tx: str
    pool: str
    sender: str  # the account that sent the transaction (``f``)
    trader: str  # the account whose tokens moved (``ma``); a router may sit between
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    log_index: int | None = None  # EVM
    instruction_index: int | None = None  # Solana
    sqrt_price_x96: int | None = None  # a concentrated-liquidity pool's price after the swap


class LiquidityChanged(msgspec.Struct, frozen=True, tag="liquidity", tag_field="kind"):
    """Liquidity added to, removed from, or migrated into a pool (amounts are positive)."""

    chain: int
    block: int
    ts: int
    tx: str
    pool: str
    action: str  # "add" | "remove" | "migrate"
    sender: str
    provider: str
    amount0: int
    amount1: int
    log_index: int | None = None
    instruction_index: int | None = None


class Transfer(msgspec.Struct, frozen=True, tag="transfer", tag_field="kind"):
    """Tokens moved between two accounts; a mint comes from, a burn goes to, ``None``."""

    chain: int
    block: int
    ts: int
    tx: str
    token: str
    sender: str | None
    receiver: str | None
    amount: int
    log_index: int | None = None
    instruction_index: int | None = None


class NativeBalanceChanged(msgspec.Struct, frozen=True, tag="native_balance", tag_field="kind"):
    """A wallet's balance of the chain's native coin (ETH, BNB, SOL…), in raw units."""

    chain: int
    block: int
    ts: int
    wallet: str
    balance: int


class WalletLabeled(msgspec.Struct, frozen=True, tag="wallet_labeled", tag_field="kind"):
    """An analytics label on a wallet: ``whale``, ``smart_money``, ``kol``, ``sniper``,
    ``bot``, ``dev`` or ``bundler`` (not an on-chain fact, but a source's opinion)."""

    chain: int
    wallet: str
    tags: tuple[str, ...]


DexEvent: TypeAlias = (
    TokenListed
    | PoolCreated
    | Swap
    | LiquidityChanged
    | Transfer
    | NativeBalanceChanged
    | WalletLabeled
)
"""Any DEX event."""
