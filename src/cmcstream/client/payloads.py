"""Typed payloads of the ten channels, as the client reads them.

Field names are the wire names of PROTOCOL.md §9 (and ``channels.json``). The
structs are generic in ``N``, the type of money and quantity fields: the client
decodes them as ``float`` by default or as :class:`~decimal.Decimal` (exactly
the digits on the wire) when asked. Every field defaults to ``None``: a field
the server leaves out reads as ``None`` rather than failing the push, and
unknown fields are ignored, so a server that adds fields breaks nothing. The
holder channels are unions tagged on ``tp``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Generic, TypeVar, Union

import msgspec

__all__ = [
    "CHANNEL_PAYLOADS",
    "CryptoLatestPrice",
    "HolderCount",
    "Kline",
    "LastActive",
    "LiquidityEvent",
    "N",
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
    "payload_type",
]

N = TypeVar("N", float, Decimal)
"""The number type of money and quantity fields: ``float`` or ``Decimal``."""


class _Payload(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    # gc=False: payloads hold only numbers, strings and other payloads, never a
    # cycle, so the collector need not track the many of them a stream makes.
    pass


class CryptoLatestPrice(_Payload, Generic[N], frozen=True):
    """``market@crypto_latest_price`` (§9.1)."""

    cid: int | None = None
    p: N | None = None
    vu: N | None = None
    mc: N | None = None
    cs: N | None = None
    p24h: N | None = None
    p7d: N | None = None
    p30d: N | None = None
    p60d: N | None = None
    p3m: N | None = None
    p1y: N | None = None
    pytd: N | None = None
    pall: N | None = None
    fdv24h: N | None = None


class TokenAggEvent(_Payload, Generic[N], frozen=True):
    """``onchain@token_agg_event`` (§9.2)."""

    pid: int | None = None
    a: str | None = None
    ap: N | None = None
    p: N | None = None
    lu: N | None = None
    ts: int | None = None


class Transaction(_Payload, Generic[N], frozen=True):
    """``onchain@transaction`` (§9.3). ``lgid`` on EVM chains, ``iix`` on Solana."""

    pid: int | None = None
    f: str | None = None
    bh: int | None = None
    tp: str | None = None
    pa: str | None = None
    t0a: str | None = None
    t1a: str | None = None
    t0s: str | None = None
    t1s: str | None = None
    vu: N | None = None
    q: N | None = None
    t0pu: N | None = None
    t1pu: N | None = None
    tx: str | None = None
    ts: int | None = None
    ma: str | None = None
    ba: str | None = None
    a0: N | None = None
    a1: N | None = None
    qi: int | None = None
    tii: int | None = None
    lgid: int | None = None
    iix: int | None = None
    ex: bool | None = None
    txtp: int | None = None


class LiquidityEvent(_Payload, Generic[N], frozen=True):
    """``onchain@liquidity_event`` (§9.10)."""

    pid: int | None = None
    f: str | None = None
    ts: int | None = None
    tp: str | None = None
    t0s: str | None = None
    t1s: str | None = None
    t0a: str | None = None
    t1a: str | None = None
    a0: N | None = None
    a1: N | None = None
    vu: N | None = None
    ma: str | None = None
    tx: str | None = None
    lgid: int | None = None
    iix: int | None = None
    pa: str | None = None


class Kline(_Payload, Generic[N], frozen=True):
    """``onchain@kline`` (§9.4): one closed candle; ``ot`` is its open time."""

    o: N | None = None
    h: N | None = None
    l: N | None = None  # noqa: E741 - the wire name
    c: N | None = None
    vu: N | None = None
    ot: int | None = None


class TokenWindow(_Payload, Generic[N], frozen=True):
    """One rolling window of ``onchain@token_metric`` (``win`` is 5m, 1h, 4h or 24h)."""

    win: str | None = None
    vu: N | None = None
    vn: N | None = None
    pc: N | None = None
    txs: int | None = None
    bc: int | None = None
    sc: int | None = None
    bvu: N | None = None
    svu: N | None = None
    bvn: N | None = None
    svn: N | None = None
    ut: int | None = None
    but: int | None = None
    sut: int | None = None
    h: N | None = None
    l: N | None = None  # noqa: E741 - the wire name


class TokenMetric(_Payload, Generic[N], frozen=True):
    """``onchain@token_metric`` (§9.5)."""

    pid: int | None = None
    a: str | None = None
    p: N | None = None
    mc: N | None = None
    lu: N | None = None
    sts: list[TokenWindow[N]] | None = None


class PoolWindow(_Payload, Generic[N], frozen=True):
    """One rolling window of ``onchain@pool_metric``."""

    bvn: N | None = None
    bvu: N | None = None
    svn: N | None = None
    svu: N | None = None
    ut: int | None = None
    but: int | None = None
    sut: int | None = None


class PoolMetric(_Payload, Generic[N], frozen=True):
    """``onchain@pool_metric`` (§9.6); the windows' wire names start with a digit."""

    pid: int | None = None
    pa: str | None = None
    m5: PoolWindow[N] | None = msgspec.field(default=None, name="5m")
    h1: PoolWindow[N] | None = msgspec.field(default=None, name="1h")
    h4: PoolWindow[N] | None = msgspec.field(default=None, name="4h")
    h24: PoolWindow[N] | None = msgspec.field(default=None, name="24h")
    d7: PoolWindow[N] | None = msgspec.field(default=None, name="7d")


class UniqueTrader(_Payload, Generic[N], frozen=True):
    """``onchain@unique_trader`` (§9.7): distinct traders of one closed interval."""

    ut: int | None = None
    ot: int | None = None


# -- onchain@holders_metrics (§9.8), tagged on ``tp`` ----------------------------------------


class _Tagged(_Payload, frozen=True, tag_field="tp"):
    @property
    def tp(self) -> str:
        """The variant tag, as on the wire."""
        return str(type(self).__struct_config__.tag)


class _Holders(_Tagged, frozen=True):
    pid: int | None = None
    a: str | None = None
    ts: int | None = None


class TagDistribution(_Holders, Generic[N], tag="tag_distribution", frozen=True):
    devp: N | None = None
    khc: int | None = None
    whc: int | None = None
    bdhc: int | None = None
    shc: int | None = None
    bhc: int | None = None
    smhc: int | None = None


class HolderCount(_Holders, Generic[N], tag="holder_count", frozen=True):
    hc: int | None = None


class TopShare(_Holders, Generic[N], tag="top_share", frozen=True):
    t10p: N | None = None
    t50p: N | None = None
    t100p: N | None = None
    t100ab: N | None = None


class TagPnl(_Holders, Generic[N], tag="tag_pnl", frozen=True):
    devpnl: N | None = None
    kpnl: N | None = None
    wpnl: N | None = None
    bdpnl: N | None = None
    spnl: N | None = None
    bpnl: N | None = None
    smpnl: N | None = None


class TagBalance(_Holders, Generic[N], tag="tag_balance", frozen=True):
    devab: N | None = None
    kab: N | None = None
    wab: N | None = None
    bdab: N | None = None
    sab: N | None = None
    bab: N | None = None
    smab: N | None = None


# -- onchain@holder_wallet_update (§9.9), tagged on ``tp`` ------------------------------------


class _Wallet(_Tagged, frozen=True):
    pid: int | None = None
    wa: str | None = None
    ts: int | None = None


class TokenBalance(_Wallet, Generic[N], tag="token_balance", frozen=True):
    a: str | None = None
    b: N | None = None
    hp: N | None = None
    bh: int | None = None


class NativeBalance(_Wallet, Generic[N], tag="native_balance", frozen=True):
    b: N | None = None
    bh: int | None = None


class PnlStats(_Wallet, Generic[N], tag="pnl_stats", frozen=True):
    a: str | None = None
    rpnl: N | None = None
    upnl: N | None = None


class LastActive(_Wallet, Generic[N], tag="last_active", frozen=True):
    lat: int | None = None


class PositionTime(_Wallet, Generic[N], tag="position_time", frozen=True):
    a: str | None = None
    spot: int | None = None
    spct: int | None = None


_GENERIC: dict[str, tuple[Any, ...]] = {
    "market@crypto_latest_price": (CryptoLatestPrice,),
    "onchain@token_agg_event": (TokenAggEvent,),
    "onchain@transaction": (Transaction,),
    "onchain@liquidity_event": (LiquidityEvent,),
    "onchain@kline": (Kline,),
    "onchain@token_metric": (TokenMetric,),
    "onchain@pool_metric": (PoolMetric,),
    "onchain@unique_trader": (UniqueTrader,),
    "onchain@holders_metrics": (TagDistribution, HolderCount, TopShare, TagPnl, TagBalance),
    "onchain@holder_wallet_update": (
        TokenBalance,
        NativeBalance,
        PnlStats,
        LastActive,
        PositionTime,
    ),
}

CHANNEL_PAYLOADS: frozenset[str] = frozenset(_GENERIC)
"""The channels this client has typed payloads for."""


def payload_type(channel: str, number: type[float] | type[Decimal]) -> Any:
    """The type to decode ``channel``'s payloads into, or ``None`` for an unknown channel.

    Args:
        channel: the wire name.
        number: ``float`` or ``Decimal``, for money and quantity fields.
    """
    kinds = _GENERIC.get(channel)
    if kinds is None:
        return None
    bound = tuple(kind[number] for kind in kinds)
    return bound[0] if len(bound) == 1 else Union[bound]  # noqa: UP007 - built at run time
