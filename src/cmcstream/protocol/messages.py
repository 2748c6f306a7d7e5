"""Every message of the protocol as a msgspec Struct, field for field as PROTOCOL.md §4–§5.

Field order follows the documented examples, so encoded frames read the same
as CoinMarketCap's. Optional fields default to :data:`msgspec.UNSET` and are
then left out of the encoded frame (the spec's "left out when…" rules).
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "METHODS",
    "Ack",
    "Data",
    "Error",
    "Pong",
    "Request",
    "RequestId",
    "ServerMessage",
    "Status",
    "Welcome",
]

RequestId = int | float | str
"""A client correlation id: any JSON number or string, echoed unchanged (§4)."""

METHODS: Final = frozenset({"subscribe", "unsubscribe", "unsubscribe_all", "ping"})


class Request(msgspec.Struct, kw_only=True):
    """A client request (§4). Unknown top-level keys are ignored.

    ``method`` is typed loosely on purpose: a missing method is 2204 and an
    unknown one 2202, which the session tells apart; only a wrong JSON type is
    a decode error (2201).
    """

    id: RequestId | UnsetType | None = UNSET
    method: str | UnsetType = UNSET
    channel: str | UnsetType = UNSET
    params: dict[str, Any] | UnsetType = UNSET


class Welcome(msgspec.Struct, tag_field="type", tag="welcome", kw_only=True):
    """Sent once, first, on every accepted connection (§5.1)."""

    ping_interval_ms: int
    ts: int


class Ack(msgspec.Struct, tag_field="type", tag="ack", kw_only=True):
    """Answer to subscribe, unsubscribe and unsubscribe_all (§5.2)."""

    id: RequestId | UnsetType = UNSET
    code: int = 0
    msg: str = "ok"
    channel: str | UnsetType = UNSET
    sub_count: int
    sub_limit: int
    duplicate: Literal[True] | UnsetType = UNSET


class Pong(msgspec.Struct, tag_field="type", tag="pong", kw_only=True):
    """Answer to ping; echoes the id (§5.3, Q7)."""

    id: RequestId | UnsetType = UNSET
    code: int = 0
    ts: int


class Status(msgspec.Struct, kw_only=True):
    """The status object of an error frame, shaped like the Pro REST API's (§5.5)."""

    timestamp: str
    error_code: str
    category: str
    error_message: str
    error_detail: str | UnsetType = UNSET


class Error(msgspec.Struct, tag_field="type", tag="error", kw_only=True):
    """A request or connection error (§5.5)."""

    id: RequestId | UnsetType = UNSET
    status: Status


class Data(msgspec.Struct, tag_field="type", tag="data", kw_only=True):
    """A push (§5.4): ``params`` holds scalars, one identity per push."""

    channel: str
    params: dict[str, Any]
    data: Any
    ts: int


ServerMessage = Welcome | Ack | Pong | Error | Data
