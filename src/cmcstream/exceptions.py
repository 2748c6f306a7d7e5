"""Every exception the cmcstream client raises, in one tree.

::

    CMCStreamError
    ├── AuthError                  fatal: the client never retries these
    │   ├── InvalidKey             close 4100, error 1001
    │   ├── MissingKey             error 1002, then close 4100
    │   ├── KeyNotActivated        error 1003, then close 4100
    │   ├── PlanExpired            error 1004, then close 4100
    │   ├── KeyDisabled            close 4101, error 1007
    │   ├── PlanNotSupported       close 4102, error 1006
    │   └── CreditsExhausted       error 1010, then close 1000
    ├── RequestError               the server answered a request with an ``error`` frame
    │   ├── InvalidRequest         22xx: the frame itself was wrong
    │   ├── ChannelError           23xx: unknown channel, plan, subscription limit
    │   ├── InvalidParams          24xx: a param missing or malformed
    │   └── ServerError            5001 and any code not in the table
    ├── CapacityError              more subscriptions than the key's connections can hold;
    │                              raised before anything is sent
    ├── RequestTimeout             no answer to a request in time
    ├── ConnectionLost             a connection dropped and reconnecting is off, or gave up
    │   └── ConnectionLimited      close 4004: the key has its ten connections already
    └── StreamClosed               the stream was closed by its owner

Errors the server sends carry its ``status`` object; errors from a close carry
the close code and reason. Retryable trouble (drops, 1011, 4004, silence) is
handled inside the client and reported as state changes, not raised, unless
reconnecting is turned off.
"""

from __future__ import annotations

from typing import Any

from cmcstream.protocol.codes import CLOSE_CODES, ERRORS, ErrorCategory, ErrorCode

__all__ = [
    "AuthError",
    "CMCStreamError",
    "CapacityError",
    "ChannelError",
    "ConnectionLimited",
    "ConnectionLost",
    "CreditsExhausted",
    "InvalidKey",
    "InvalidParams",
    "InvalidRequest",
    "KeyDisabled",
    "KeyNotActivated",
    "MissingKey",
    "PlanExpired",
    "PlanNotSupported",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "StreamClosed",
    "auth_error_for_close",
    "error_for_status",
]


class CMCStreamError(Exception):
    """Base of every cmcstream client error."""


class _WithStatus(CMCStreamError):
    """An error the server reported in an ``error`` frame or with a close code."""

    def __init__(
        self,
        message: str,
        *,
        status: dict[str, Any] | None = None,
        close_code: int | None = None,
        close_reason: str = "",
    ) -> None:
        super().__init__(message)
        self.status: dict[str, Any] = status or {}
        self.close_code = close_code
        self.close_reason = close_reason

    @property
    def error_code(self) -> int | None:
        """``status.error_code`` as an integer, when the server sent one."""
        raw = self.status.get("error_code")
        try:
            return int(raw) if raw is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def detail(self) -> str | None:
        """``status.error_detail``, when present."""
        detail = self.status.get("error_detail")
        return detail if isinstance(detail, str) else None


class AuthError(_WithStatus):
    """The key, its plan or its credits do not allow streaming. Never retried."""


class InvalidKey(AuthError):
    """The key is unknown (close 4100, error 1001)."""


class MissingKey(AuthError):
    """No key was sent (error 1002)."""


class KeyNotActivated(AuthError):
    """The key exists but is not activated yet (error 1003)."""


class PlanExpired(AuthError):
    """The key's plan has expired (error 1004)."""


class KeyDisabled(AuthError):
    """The key was disabled (close 4101, error 1007)."""


class PlanNotSupported(AuthError):
    """The key's plan does not include the WebSocket API (close 4102, error 1006)."""


class CreditsExhausted(AuthError):
    """The key has used its monthly credits (error 1010)."""


class RequestError(_WithStatus):
    """The server refused a request; ``status`` holds its answer."""


class InvalidRequest(RequestError):
    """The request frame was malformed (22xx)."""


class ChannelError(RequestError):
    """Unknown channel, channel not on the plan, or a limit reached (23xx)."""


class InvalidParams(RequestError):
    """A required param is missing or a param is malformed (24xx)."""


class ServerError(RequestError):
    """The server failed (5001), or sent a code this client does not know."""


class CapacityError(CMCStreamError):
    """The subscriptions asked for do not fit in the connections the key may open."""


class RequestTimeout(CMCStreamError):
    """The server did not answer a request in time."""


class ConnectionLost(_WithStatus):
    """A connection dropped and was not (or could no longer be) re-established."""


class ConnectionLimited(ConnectionLost):
    """The key already holds its allowed connections (close 4004, error 2304)."""


class StreamClosed(CMCStreamError):
    """The stream was closed; no more pushes or requests."""


# The typed error of each auth code; which codes are auth errors, and which
# close codes are fatal and for what, is the protocol's table (protocol/codes.py).
_AUTH_CLASSES: dict[ErrorCode, type[AuthError]] = {
    ErrorCode.KEY_INVALID: InvalidKey,
    ErrorCode.KEY_MISSING: MissingKey,
    ErrorCode.KEY_NOT_ACTIVATED: KeyNotActivated,
    ErrorCode.PLAN_EXPIRED: PlanExpired,
    ErrorCode.PLAN_NOT_SUPPORTED: PlanNotSupported,
    ErrorCode.KEY_DISABLED: KeyDisabled,
    ErrorCode.CREDITS_EXHAUSTED: CreditsExhausted,
}

_AUTH_BY_ERROR: dict[int, type[AuthError]] = {
    int(code): _AUTH_CLASSES[code]
    for code, spec in ERRORS.items()
    if spec.category is ErrorCategory.AUTH
}

_AUTH_BY_CLOSE: dict[int, type[AuthError]] = {
    int(code): _AUTH_BY_ERROR[spec.error]
    for code, spec in CLOSE_CODES.items()
    if spec.fatal and spec.error is not None
}

_REQUEST_FAMILIES: dict[int, type[RequestError]] = {
    22: InvalidRequest,
    23: ChannelError,
    24: InvalidParams,
}


def error_for_status(status: dict[str, Any]) -> AuthError | RequestError | ConnectionLost:
    """The exception for an ``error`` frame's ``status`` object."""
    message = str(status.get("error_message") or "error")
    detail = status.get("error_detail")
    text = f"{message} {detail}" if isinstance(detail, str) and detail else message
    try:
        code = int(status.get("error_code", 0))
    except (TypeError, ValueError):
        code = 0
    if code in _AUTH_BY_ERROR:
        return _AUTH_BY_ERROR[code](text, status=status)
    if code == ErrorCode.CONNECTION_LIMIT:
        return ConnectionLimited(text, status=status)
    family = _REQUEST_FAMILIES.get(code // 100, ServerError)
    return family(text, status=status)


def auth_error_for_close(code: int, reason: str) -> AuthError | None:
    """The fatal error a close code stands for, or ``None`` when it is retryable."""
    kind = _AUTH_BY_CLOSE.get(code)
    if kind is None:
        return None
    return kind(f"closed {code}: {reason or kind.__doc__}", close_code=code, close_reason=reason)
