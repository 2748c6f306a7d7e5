"""Bytes in and out: one decoder and one encoder instance for the whole protocol.

Decoding a request fails in exactly one documented way, :class:`RequestError`
carrying the error code to answer with (§13: frame, then JSON, then fields).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from cmcstream.protocol.codes import ErrorCode
from cmcstream.protocol.messages import Request, ServerMessage

__all__ = ["RequestError", "data_prefix", "decode_request", "encode", "encode_data"]

_request_decoder: Final = msgspec.json.Decoder(Request)

# No request of the protocol nests deeper than three levels. Deeper input is
# refused before it is decoded, whatever the interpreter's recursion limit
# (which msgspec's own depth check follows, and which a library may raise).
MAX_DEPTH: Final = 32
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_BRACKETS_BYTES: Final = re.compile(rb"[\[\]{}]")
_encoder: Final = msgspec.json.Encoder()

# msgspec names the offending field as ``$.field``; we turn it into the
# field name for ``error_detail``.
_PATH = re.compile(r"at `\$\.(\w+)")

_FIELD_TYPES: Final = {
    "id": "a number or a string",
    "method": "a string",
    "channel": "a string",
    "params": "an object",
}


class RequestError(Exception):
    """A request that cannot be served, with the code and detail to answer with."""

    def __init__(self, code: ErrorCode, detail: str | None = None) -> None:
        super().__init__(detail or code.name)
        self.code = code
        self.detail = detail


def decode_request(data: bytes | str) -> Request:
    """Decode one text frame into a :class:`Request`.

    Raises:
        RequestError: 2201 when the frame is not JSON, not an object, a
            top-level field has the wrong JSON type, or it nests deeper than
            :data:`MAX_DEPTH`.
    """
    if _too_deep(data):
        raise RequestError(ErrorCode.INVALID_REQUEST, "Request nests too deeply.")
    try:
        return _request_decoder.decode(data)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        if match is None:
            raise RequestError(
                ErrorCode.INVALID_REQUEST, "Request must be a JSON object."
            ) from None
        field = match.group(1)
        expected = _FIELD_TYPES.get(field, "of another type")
        raise RequestError(
            ErrorCode.INVALID_REQUEST, f"Field '{field}' must be {expected}."
        ) from None
    except msgspec.DecodeError:
        raise RequestError(ErrorCode.INVALID_REQUEST, "Request must be a JSON object.") from None


def _too_deep(data: bytes | str) -> bool:
    """Whether brackets nest deeper than :data:`MAX_DEPTH` (strings' brackets count too)."""
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= MAX_DEPTH:
            return False  # the common case: a count at C speed, nothing more
        marks = [m in "[{" for m in _BRACKETS.findall(data)]
    else:
        if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
            return False
        marks = [m in (b"[", b"{") for m in _BRACKETS_BYTES.findall(data)]
    depth = 0
    for opening in marks:
        depth = depth + 1 if opening else depth - 1
        if depth > MAX_DEPTH:
            return True
    return False


def encode(message: ServerMessage) -> bytes:
    """Encode a server message to the bytes of one text frame."""
    return _encoder.encode(message)


def encode_data(prefix: bytes, payload: Any, ts: int) -> bytes:
    """Encode a push from its cached envelope prefix, its payload and its send time.

    ``prefix`` is ``{"type":"data","channel":…,"params":…,"data":`` as built by
    :func:`data_prefix`; the payload is encoded once per topic and shared by
    every subscriber.
    """
    return b"".join((prefix, _encoder.encode(payload), b',"ts":', str(ts).encode(), b"}"))


def data_prefix(channel: str, params: dict[str, Any]) -> bytes:
    """The constant head of every push of one topic, up to ``"data":``."""
    return b"".join(
        (
            b'{"type":"data","channel":',
            _encoder.encode(channel),
            b',"params":',
            _encoder.encode(params),
            b',"data":',
        )
    )
