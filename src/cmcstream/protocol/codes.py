"""Every error code and close code of the protocol, in one table.

PROTOCOL.md §11 (error codes) and §12 (close codes). Nothing else in the
package spells one of these numbers or messages: it names a member of
:class:`ErrorCode` or :class:`CloseCode` and looks the rest up here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CLOSE_CODES",
    "ERRORS",
    "CloseCode",
    "CloseSpec",
    "ErrorCategory",
    "ErrorCode",
    "ErrorSpec",
]


class ErrorCategory(enum.StrEnum):
    """``status.category`` of an error frame."""

    AUTH = "AUTH"
    PROTOCOL = "PROTOCOL"
    SERVER = "SERVER"


class ErrorCode(enum.IntEnum):
    """Error codes carried as ``status.error_code`` (a string on the wire, §5.5, Q21)."""

    KEY_INVALID = 1001
    KEY_MISSING = 1002
    KEY_NOT_ACTIVATED = 1003
    PLAN_EXPIRED = 1004
    PLAN_NOT_SUPPORTED = 1006
    KEY_DISABLED = 1007
    CREDITS_EXHAUSTED = 1010
    INVALID_REQUEST = 2201
    UNKNOWN_METHOD = 2202
    BAD_LENGTH = 2203
    MISSING_FIELD = 2204
    UNKNOWN_CHANNEL = 2301
    CHANNEL_NOT_ON_PLAN = 2302
    SUBSCRIPTION_LIMIT = 2303
    CONNECTION_LIMIT = 2304
    MISSING_PARAM = 2401
    INVALID_PARAM = 2402
    INTERNAL = 5001


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends (§12)."""

    NORMAL = 1000
    IDLE_TIMEOUT = 1001
    SEND_FAILURE = 1011
    FRAME_SINK_CANCELLED = 1012
    CLOSE_TOPIC = 1013
    UNKNOWN = 1014
    CONNECTION_LIMIT = 4004
    KEY_INVALID = 4100
    KEY_DISABLED = 4101
    PLAN_NOT_SUPPORTED = 4102


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error table.

    Attributes:
        code: the numeric code.
        category: ``AUTH``, ``PROTOCOL`` or ``SERVER``.
        group: the documentation's grouping, for humans.
        message: the exact ``error_message`` text (a protocol constant).
        close_code: the close code used instead of a frame at connect time, if any.
    """

    code: ErrorCode
    category: ErrorCategory
    group: str
    message: str
    close_code: CloseCode | None = None

    @property
    def wire_code(self) -> str:
        """The code as the wire carries it: a string of digits."""
        return str(int(self.code))


@dataclass(frozen=True, slots=True)
class CloseSpec:
    """One row of the close-code table.

    Attributes:
        code: the close code.
        reason: the reason phrase sent in the close frame.
        fatal: whether a client must not reconnect after it (§12.1).
        error: the error code the close stands for, if any.
    """

    code: CloseCode
    reason: str
    fatal: bool = False
    error: ErrorCode | None = None


_A, _P, _S = ErrorCategory.AUTH, ErrorCategory.PROTOCOL, ErrorCategory.SERVER

ERRORS: dict[ErrorCode, ErrorSpec] = {
    spec.code: spec
    for spec in (
        ErrorSpec(
            ErrorCode.KEY_INVALID,
            _A,
            "Authentication",
            "This API Key is invalid.",
            CloseCode.KEY_INVALID,
        ),
        ErrorSpec(ErrorCode.KEY_MISSING, _A, "Authentication", "API key missing."),
        ErrorSpec(
            ErrorCode.KEY_NOT_ACTIVATED, _A, "Authentication", "Your API Key must be activated."
        ),
        ErrorSpec(
            ErrorCode.PLAN_EXPIRED,
            _A,
            "Authentication",
            "Your API Key subscription plan has expired.",
        ),
        ErrorSpec(
            ErrorCode.PLAN_NOT_SUPPORTED,
            _A,
            "Plan",
            "Your plan does not support this endpoint.",
            CloseCode.PLAN_NOT_SUPPORTED,
        ),
        ErrorSpec(
            ErrorCode.KEY_DISABLED,
            _A,
            "Authentication",
            "This API Key has been disabled. Please contact support.",
            CloseCode.KEY_DISABLED,
        ),
        ErrorSpec(ErrorCode.CREDITS_EXHAUSTED, _A, "Credits", "Monthly credit limit exceeded."),
        ErrorSpec(ErrorCode.INVALID_REQUEST, _P, "Request format", "Invalid request format."),
        ErrorSpec(ErrorCode.UNKNOWN_METHOD, _P, "Request format", "Unknown method."),
        ErrorSpec(ErrorCode.BAD_LENGTH, _P, "Request format", "Message length is not right."),
        ErrorSpec(ErrorCode.MISSING_FIELD, _P, "Request format", "Missing required field."),
        ErrorSpec(ErrorCode.UNKNOWN_CHANNEL, _P, "Subscription/channel", "Channel does not exist."),
        ErrorSpec(
            ErrorCode.CHANNEL_NOT_ON_PLAN,
            _P,
            "Subscription/channel",
            "Channel not available on your plan.",
        ),
        ErrorSpec(
            ErrorCode.SUBSCRIPTION_LIMIT, _P, "Subscription/channel", "Subscription limit reached."
        ),
        ErrorSpec(
            ErrorCode.CONNECTION_LIMIT,
            _P,
            "Subscription/channel",
            "Connection limit reached.",
            CloseCode.CONNECTION_LIMIT,
        ),
        ErrorSpec(
            ErrorCode.MISSING_PARAM, _P, "Param validation", "Missing required param for channel."
        ),
        ErrorSpec(ErrorCode.INVALID_PARAM, _P, "Param validation", "Invalid param for channel."),
        ErrorSpec(ErrorCode.INTERNAL, _S, "Internal", "Internal server error."),
    )
}

CLOSE_CODES: dict[CloseCode, CloseSpec] = {
    spec.code: spec
    for spec in (
        CloseSpec(CloseCode.NORMAL, "Normal close"),
        CloseSpec(CloseCode.IDLE_TIMEOUT, "Write idle timeout"),
        CloseSpec(CloseCode.SEND_FAILURE, "Send failure"),
        CloseSpec(CloseCode.FRAME_SINK_CANCELLED, "Frame sink cancellation"),
        CloseSpec(CloseCode.CLOSE_TOPIC, "Close topic signal"),
        CloseSpec(CloseCode.UNKNOWN, "Unknown close reason"),
        CloseSpec(CloseCode.CONNECTION_LIMIT, "Connection limit", error=ErrorCode.CONNECTION_LIMIT),
        CloseSpec(
            CloseCode.KEY_INVALID, "API key invalid", fatal=True, error=ErrorCode.KEY_INVALID
        ),
        CloseSpec(
            CloseCode.KEY_DISABLED, "API key disabled", fatal=True, error=ErrorCode.KEY_DISABLED
        ),
        CloseSpec(
            CloseCode.PLAN_NOT_SUPPORTED,
            "Plan not support WS",
            fatal=True,
            error=ErrorCode.PLAN_NOT_SUPPORTED,
        ),
    )
}
