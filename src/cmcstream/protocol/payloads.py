"""Channel payloads: the ``data`` object of each push, field for field as the spec names them.

PROTOCOL.md §9. Numeric fields the spec marks nullable are ``float | None``;
``None`` is encoded as JSON ``null`` (never left out), because every payload
field is part of the documented shape.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "CryptoLatestPrice",
    "HolderCount",
    "HoldersMetric",
    "Kline",
    "LastActive",
    "LiquidityEvent",
    "NativeBalance",
    "PnlStats",
    "PoolMetric",
    "PoolWindow",
    "PositionTime",
    "TagBalance",
    "TagDistribution",
    "TagPnl",
    "TokenAggEvent",
    "TokenBalance",
    "TokenMetric",
    "TokenWindow",
    "TopShare",
    "Transaction",
    "UniqueTrader",
    "WalletUpdate",
]


class CryptoLatestPrice(msgspec.Struct, frozen=True):
    """``market@crypto_latest_price`` (``CryptoLatestPriceFullPayload``, 14 fields, §9.1)."""

    cid: int
    p: float
    vu: float | None
    mc: float | None
    cs: int | None
    p24h: float | None
    p7d: float | None
    p30d: float | None
    p60d: float | None
    p3m: float | None
    p1y: float | None
    pytd: float | None
    pall: float | None
    fdv24h: float | None


# -- on-chain channels (§9.2–§9.10) --------------------------------------------------------------
#
# Fields that exist only on some chains (``lgid`` on EVM, ``iix`` on Solana, Q16)
# default to UNSET and are then left out of the frame.


class TokenAggEvent(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@token_agg_event`` (§9.2)."""

    pid: int
    a: str
    ap: float | None
    p: float | None
    lu: float | None
    ts: int


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@transaction``: one swap (§9.3)."""

    pid: int
    f: str | None
    bh: int | None
    tp: str
    pa: str | None
    t0a: str
    t1a: str
    t0s: str | None
    t1s: str | None
    vu: float | None
    q: float | None
    t0pu: float | None
    t1pu: float | None
    tx: str
    ts: int
    ma: str | None
    ba: str | None
    a0: float | None
    a1: float | None
    qi: int | None
    tii: int | None
    lgid: int | UnsetType = UNSET
    iix: int | UnsetType = UNSET
    ex: bool
    txtp: int


class LiquidityEvent(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@liquidity_event`` (§9.10); ``pa`` is this server's addition, as §9.10 allows."""

    pid: int
    f: str | None
    ts: int
    tp: str
    t0s: str | None
    t1s: str | None
    t0a: str
    t1a: str
    a0: float | None
    a1: float | None
    vu: float | None
    ma: str | None
    tx: str
    lgid: int | UnsetType = UNSET
    iix: int | UnsetType = UNSET
    pa: str | UnsetType = UNSET


class Kline(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@kline``: one finished candle (§9.4, Q6)."""

    o: float | None
    h: float | None
    l: float | None  # noqa: E741 - the wire name
    c: float | None
    vu: float | None
    ot: int


class TokenWindow(msgspec.Struct, frozen=True, kw_only=True):
    """One rolling window of ``token_metric.sts`` (§9.5)."""

    win: str
    vu: float | None
    vn: float | None
    pc: float | None
    txs: int | None
    bc: int | None
    sc: int | None
    bvu: float | None
    svu: float | None
    bvn: float | None
    svn: float | None
    ut: int | None
    but: int | None
    sut: int | None
    h: float | None
    l: float | None  # noqa: E741 - the wire name


class TokenMetric(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@token_metric`` (§9.5)."""

    pid: int
    a: str
    p: float | None
    mc: float | None
    lu: float | None
    sts: list[TokenWindow]


class PoolWindow(msgspec.Struct, frozen=True, kw_only=True):
    """One window of ``pool_metric`` (§9.6); ``*vn`` in units of the pool's base token."""

    bvn: float | None
    bvu: float | None
    svn: float | None
    svu: float | None
    ut: int | None
    but: int | None
    sut: int | None


class PoolMetric(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@pool_metric`` (§9.6, all five windows per Q5)."""

    pid: int
    pa: str
    m5: PoolWindow | None = msgspec.field(name="5m")
    h1: PoolWindow | None = msgspec.field(name="1h")
    h4: PoolWindow | None = msgspec.field(name="4h")
    h24: PoolWindow | None = msgspec.field(name="24h")
    d7: PoolWindow | None = msgspec.field(name="7d")


class UniqueTrader(msgspec.Struct, frozen=True, kw_only=True):
    """``onchain@unique_trader``: distinct traders in one finished interval (§9.7)."""

    ut: int | None
    ot: int


# ``onchain@holders_metrics`` variants (§9.8). ``tp`` is an ordinary field with a
# fixed default rather than a msgspec tag, so it stays where the documented
# examples put it (after ``a``), not first.


class TagDistribution(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    a: str
    tp: str = "tag_distribution"
    ts: int
    devp: float | None
    khc: int | None
    whc: int | None
    bdhc: int | None
    shc: int | None
    bhc: int | None
    smhc: int | None


class HolderCount(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    a: str
    tp: str = "holder_count"
    ts: int
    hc: int | None


class TopShare(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    a: str
    tp: str = "top_share"
    ts: int
    t10p: float | None
    t50p: float | None
    t100p: float | None
    t100ab: float | None


class TagPnl(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    a: str
    tp: str = "tag_pnl"
    ts: int
    devpnl: float | None
    kpnl: float | None
    wpnl: float | None
    bdpnl: float | None
    spnl: float | None
    bpnl: float | None
    smpnl: float | None


class TagBalance(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    a: str
    tp: str = "tag_balance"
    ts: int
    devab: float | None
    kab: float | None
    wab: float | None
    bdab: float | None
    sab: float | None
    bab: float | None
    smab: float | None


HoldersMetric = TagDistribution | HolderCount | TopShare | TagPnl | TagBalance


# ``onchain@holder_wallet_update`` variants (§9.9).


class TokenBalance(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    wa: str
    tp: str = "token_balance"
    ts: int
    a: str
    b: float | None
    hp: float | None
    bh: int | None


class NativeBalance(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    wa: str
    tp: str = "native_balance"
    ts: int
    b: float | None
    bh: int | None


class PnlStats(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    wa: str
    tp: str = "pnl_stats"
    ts: int
    a: str | None
    rpnl: float | None
    upnl: float | None


class LastActive(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    wa: str
    tp: str = "last_active"
    ts: int
    lat: int | None


class PositionTime(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    wa: str
    tp: str = "position_time"
    ts: int
    a: str | None
    spot: int | None
    spct: int | None


WalletUpdate = TokenBalance | NativeBalance | PnlStats | LastActive | PositionTime
