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
            the decoder can follow.
    """
    try:
        return _request_decoder.decode(data)
    except RecursionError:
        # msgspec follows nesting on the C stack and stops at the interpreter's
        # recursion limit; how deep that is depends on the caller's own depth.
        raise RequestError(ErrorCode.INVALID_REQUEST, "Request nests too deeply.") from None
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
