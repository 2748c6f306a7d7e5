"""Server frames as the client reads them: one envelope decode, then the payload.

The envelope is decoded once with the payload kept as raw bytes; the payload
is then decoded straight into its channel's struct. Frames that are not JSON
objects, and ``type`` values this client does not know, are tolerated: they
are counted and skipped, never fatal.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import msgspec

from cmcstream.client.payloads import payload_type

__all__ = ["Ack", "Envelope", "FrameDecoder", "Numbers", "Push"]

Numbers = Literal["float", "decimal"]
P = TypeVar("P")

# Pushes from CoinMarketCap and cmcstream start like this; for them the channel
# is read off the text, and the whole frame decodes in one pass into a Push of
# its channel's type (the ``type`` key is ignored). Any other frame takes the
# general two-pass path.
_DATA_HEAD = '{"type":"data","channel":"'


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """Every top-level field any server message carries (§10); unknown keys are ignored."""

    type: str = ""
    id: Any = None
    code: int | None = None
    channel: str | None = None
    params: dict[str, Any] | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    ts: int | None = None
    sub_count: int | None = None
    sub_limit: int | None = None
    duplicate: bool = False
    ping_interval_ms: int | None = None
    status: dict[str, Any] | None = None


class Push(msgspec.Struct, Generic[P], gc=False):
    """One ``data`` frame.

    Attributes:
        channel: the channel, e.g. ``market@crypto_latest_price``.
        params: the subscription identity, one scalar per param (``{"crypto_ids": 1}``).
        data: the payload: a struct of :mod:`cmcstream.client.payloads`, or a
            dict when raw payloads were asked for or the payload has a shape
            this client does not know (an unknown holder ``tp``).
        ts: server send time, epoch ms.
        received: local receive time, epoch seconds.
    """

    channel: str
    params: dict[str, Any]
    data: P
    ts: int = 0
    received: float = 0.0


class Ack(msgspec.Struct, frozen=True):
    """The answer to subscribe, unsubscribe or unsubscribe_all.

    Attributes:
        channel: the request's channel (``None`` for unsubscribe_all).
        sub_count: subscriptions active on the stream after the request,
            across all its connections.
        sub_limit: the per-connection limit the server announced.
        duplicate: every subscription asked for was active already.
        connections: how many connections the request went to.
    """

    channel: str | None
    sub_count: int
    sub_limit: int
    duplicate: bool = False
    connections: int = 1


class FrameDecoder:
    """Decodes frames into envelopes, and payloads into their channel's type."""

    def __init__(self, numbers: Numbers = "float", *, typed: bool = True) -> None:
        if numbers not in ("float", "decimal"):
            raise ValueError("numbers must be 'float' or 'decimal'")
        self._envelope = msgspec.json.Decoder(Envelope)
        number: type[float] | type[Decimal] = Decimal if numbers == "decimal" else float
        self._raw: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            float_hook=Decimal if numbers == "decimal" else None
        )
        self._typed: dict[str, msgspec.json.Decoder[Any]] = {}
        self._frames: dict[str, msgspec.json.Decoder[Any]] = {}
        self._number = number
        self._use_types = typed
        self.unreadable = 0

    def data(self, frame: str | bytes, received: float) -> Push[Any] | None:
        """The push in ``frame`` by the one-pass path, or ``None`` when it does not apply.

        ``None`` means "use :meth:`envelope`": the frame is not a push laid out
        the usual way, or its payload has a shape this client does not know.
        """
        if not isinstance(frame, str) or not frame.startswith(_DATA_HEAD):
            return None
        end = frame.find('"', len(_DATA_HEAD))
        channel = frame[len(_DATA_HEAD) : end]
        if channel in self._frames:
            decoder = self._frames[channel]
        else:
            kind = payload_type(channel, self._number) if self._use_types else None
            decoder = self._frames[channel] = (
                msgspec.json.Decoder(Push[kind])  # type: ignore[valid-type]
                if kind is not None
                else msgspec.json.Decoder(
                    Push[dict[str, Any]],
                    float_hook=Decimal if self._number is Decimal else None,
                )
            )
        try:
            push: Push[Any] = decoder.decode(frame)
        except msgspec.DecodeError:
            return None
        push.received = received
        return push

    def envelope(self, frame: str | bytes) -> Envelope | None:
        """The envelope of ``frame``, or ``None`` (counted) when it is not a JSON object."""
        try:
            return self._envelope.decode(frame)
        except msgspec.DecodeError:
            self.unreadable += 1
            return None

    def push(self, env: Envelope, received: float | None = None) -> Push[Any] | None:
        """The push a ``data`` envelope carries, or ``None`` when it lacks its fields."""
        if env.channel is None or not env.data:
            self.unreadable += 1
            return None
        return Push(
            env.channel,
            env.params or {},
            self.payload(env.channel, env.data),
            env.ts or 0,
            time.time() if received is None else received,
        )

    def payload(self, channel: str, raw: msgspec.Raw | bytes) -> Any:
        """``raw`` decoded as ``channel``'s payload; a dict when it has no known type."""
        decoder = self._typed.get(channel) if self._use_types else None
        if decoder is None and self._use_types and channel not in self._typed:
            kind = payload_type(channel, self._number)
            if kind is not None:
                decoder = self._typed[channel] = msgspec.json.Decoder(kind)
        if decoder is not None:
            try:
                return decoder.decode(raw)
            except msgspec.ValidationError:
                # A variant or field type this client does not know: keep the data.
                pass
        return self._raw.decode(raw)
