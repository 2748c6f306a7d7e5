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
====================  =============================  ==========
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from cmcstream.protocol.codes import CloseCode, ErrorCode
from cmcstream.protocol.plans import PLANS, Plan
from cmcstream.server.keystore import KeyRecord, KeyStatus, KeyStore
from cmcstream.server.usage import UsageLedger

__all__ = ["HEADER", "QUERY_PARAM", "Admission", "Refusal", "admit", "api_key_of"]

HEADER = "X-CMC_PRO_API_KEY"
QUERY_PARAM = "CMC_PRO_API_KEY"


@dataclass(frozen=True, slots=True)
class Admission:
    record: KeyRecord
    plan: Plan


@dataclass(frozen=True, slots=True)
class Refusal:
    close_code: CloseCode
    error: ErrorCode | None = None


def api_key_of(request: Request) -> str | None:
    """The API key a handshake request carries, or None."""
    key = request.headers.get(HEADER)
    if key:
        return key.strip() or None
    values = parse_qs(urlsplit(request.path).query).get(QUERY_PARAM)
    if values and values[0].strip():
        return values[0].strip()
    return None


def admit(
    key: str | None,
    store: KeyStore,
    ledger: UsageLedger,
    open_connections: int,
    now_ms: int,
) -> Admission | Refusal:
    """Decide whether a connection with ``key`` may proceed.

    Args:
        key: the key from the handshake.
        store: where keys live.
        ledger: this month's usage, to refuse keys without credits.
        open_connections: connections the key has open already.
        now_ms: the current time, for the usage month.
    """
    if key is None:
        return Refusal(CloseCode.KEY_INVALID, ErrorCode.KEY_MISSING)
    record = store.get(key)
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
    if ledger.exhausted(record, now_ms):
        return Refusal(CloseCode.NORMAL, ErrorCode.CREDITS_EXHAUSTED)
    if open_connections >= plan.connection_limit:
        return Refusal(CloseCode.CONNECTION_LIMIT)
    return Admission(record, plan)
