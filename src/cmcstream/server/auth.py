"""Connect-time admission: key, status, plan, credits and connection count.

PROTOCOL.md §2, §3 and §12.1. The key comes from the ``X-CMC_PRO_API_KEY``
header, or as a fallback from a ``CMC_PRO_API_KEY`` query parameter (Q8); the
header wins. A refusal is either a bare close code, or an error frame
followed by a close, exactly as §12.1 recommends:

====================  =============================  ==========
situation             error frame                    close code
====================  =============================  ==========
no key                1002 ``API key missing.``      4100
unknown key           —                              4100
disabled key          —                              4101
key not activated     1003                           4100
plan expired          1004                           4100
plan without WS       —                              4102
credits exhausted     1010                           1000
11th connection       —                              4004
two different keys    —                              4100
====================  =============================  ==========

A handshake that carries the key header more than once is served when every
copy holds the same key (a proxy may repeat a header), and refused as an
invalid key when they differ: picking one would be a guess about which the
client meant.

"Credits exhausted" means the key cannot pay for the least billable thing of
the billing model any more (one subscription, or one push).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from cmcstream.protocol.billing import Account
from cmcstream.protocol.codes import CloseCode, ErrorCode
from cmcstream.protocol.handshake import API_KEY_HEADER as HEADER
from cmcstream.protocol.plans import PLANS, Plan
from cmcstream.server.keystore import KeyRecord, KeyStatus

__all__ = [
    "HEADER",
    "QUERY_PARAM",
    "Admission",
    "ConflictingKeys",
    "Refusal",
    "admit",
    "api_key_of",
]

QUERY_PARAM = "CMC_PRO_API_KEY"


@dataclass(frozen=True, slots=True)
class Admission:
    record: KeyRecord
    plan: Plan
    account: Account | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    close_code: CloseCode
    error: ErrorCode | None = None


class ConflictingKeys(ValueError):
    """The handshake carries the key header more than once, with different keys."""


def api_key_of(request: Request) -> str | None:
    """The API key a handshake request carries, or None.

    Raises:
        ConflictingKeys: the header is repeated with different keys.
    """
    keys = {value.strip() for value in request.headers.get_all(HEADER)} - {""}
    if len(keys) > 1:
        raise ConflictingKeys(f"{len(keys)} different {HEADER} headers")
    if keys:
        return keys.pop()
    values = parse_qs(urlsplit(request.path).query).get(QUERY_PARAM)
    if values and values[0].strip():
        return values[0].strip()
    return None


def admit(
    key: str | None,
    record: KeyRecord | None,
    account: Account | None,
    least_charge: int,
    open_connections: int,
) -> Admission | Refusal:
    """Decide whether a connection with ``key`` may proceed.

    Args:
        key: the key from the handshake.
        record: the stored key, or None when there is no such key.
        account: the key's credits this month (None: not checked).
        least_charge: milli-credits of the least billable thing.
        open_connections: connections the key has open already.
    """
    if key is None:
        return Refusal(CloseCode.KEY_INVALID, ErrorCode.KEY_MISSING)
    if record is None:
        return Refusal(CloseCode.KEY_INVALID)
    if record.status is KeyStatus.DISABLED:
        return Refusal(CloseCode.KEY_DISABLED)
    if record.status is KeyStatus.INACTIVE:
        return Refusal(CloseCode.KEY_INVALID, ErrorCode.KEY_NOT_ACTIVATED)
    if record.status is KeyStatus.EXPIRED:
        return Refusal(CloseCode.KEY_INVALID, ErrorCode.PLAN_EXPIRED)
    plan = PLANS.get(record.plan)
    if plan is None or not plan.websocket:
        return Refusal(CloseCode.PLAN_NOT_SUPPORTED)
    if account is not None and account.remaining < least_charge:
        return Refusal(CloseCode.NORMAL, ErrorCode.CREDITS_EXHAUSTED)
    if open_connections >= plan.connection_limit:
        return Refusal(CloseCode.CONNECTION_LIMIT)
    return Admission(record, plan, account)
