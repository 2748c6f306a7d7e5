"""Channel payloads: the ``data`` object of each push, field for field as the spec names them.

PROTOCOL.md §9. Numeric fields the spec marks nullable are ``float | None``;
``None`` is encoded as JSON ``null`` (never left out), because every payload
field is part of the documented shape.
"""

from __future__ import annotations

import msgspec

__all__ = ["CryptoLatestPrice"]


class CryptoLatestPrice(msgspec.Struct, frozen=True):
    """``market@crypto_latest_price`` (``CryptoLatestPriceFullPayload``, 14 fields, §9.1)."""

    cid: int
    p: float
    vu: float | None
    mc: float | None
    cs: float | None
    p24h: float | None
    p7d: float | None
    p30d: float | None
    p60d: float | None
    p3m: float | None
    p1y: float | None
    pytd: float | None
    pall: float | None
    fdv24h: float | None
