"""The protocol session: one connection's requests in, effects out, with no I/O.

PROTOCOL.md §4, §6.3 and §13. The I/O layer hands every frame the client sends
to :meth:`Session.receive_text` or :meth:`Session.receive_binary` and carries
out the effects in order: a :class:`Subscribe` or :class:`Unsubscribe` changes
what the connection receives, a :class:`Reply` is a frame to send. A request
error is only ever a reply; it never closes the connection.

Checks run in the order of §13: frame, JSON, ``method``, ``channel``,
params, limit.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from msgspec import UNSET, UnsetType

from cmcstream.protocol.billing import Account, CreditMeter, format_credits
from cmcstream.protocol.channels import ChannelRegistry, ChannelSpec, Subscription
from cmcstream.protocol.codec import RequestError, decode_request
from cmcstream.protocol.codes import ERRORS, ErrorCode
from cmcstream.protocol.messages import Ack, Error, Pong, Request, RequestId, Status

__all__ = [
    "Counting",
    "Effect",
    "Reply",
    "Session",
    "Subscribe",
    "Unsubscribe",
    "error_message",
    "iso_timestamp",
]

logger = logging.getLogger(__name__)


class Counting(enum.StrEnum):
    """What ``sub_count`` counts (§6.3, Q1)."""

    PER_ITEM = "per_item"  # one per identity tuple (default)
    PER_REQUEST = "per_request"  # one per subscribe request that added something


@dataclass(frozen=True, slots=True)
class Reply:
    """Send this message to the client."""

    message: Ack | Pong | Error


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Start delivering these subscriptions to the connection."""

    subscriptions: tuple[Subscription, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop delivering these topics to the connection."""

    topics: tuple[str, ...]


Effect = Reply | Subscribe | Unsubscribe


def iso_timestamp(now_ms: int) -> str:
    """``status.timestamp``: ISO-8601 UTC with milliseconds and ``Z`` (§5.5)."""
    moment = datetime.fromtimestamp(now_ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{now_ms % 1000:03d}Z"


def error_message(
    code: ErrorCode,
    now_ms: int,
    detail: str | None = None,
    request_id: RequestId | UnsetType = UNSET,
) -> Error:
    """The ``error`` frame for ``code``, with its fixed message from the table."""
    spec = ERRORS[code]
    return Error(
        id=request_id,
        status=Status(
            timestamp=iso_timestamp(now_ms),
            error_code=spec.wire_code,
            category=spec.category.value,
            error_message=spec.message,
            error_detail=UNSET if detail is None else detail,
        ),
    )


class Session:
    """The subscriptions and request handling of one connection.

    Args:
        registry: the channels and platforms requests are checked against.
        sub_limit: subscriptions allowed on the connection (the plan's limit).
        max_frame_bytes: frames longer than this get 2203.
        counting: what ``sub_count`` counts.
        channels: channel names the plan allows; ``None`` for all.
        account: the key's credits; with ``meter``, a subscribe that would
            spend more than remains is refused with 1010 before anything is added.
        meter: what subscriptions cost.
    """

    def __init__(
        self,
        registry: ChannelRegistry,
        *,
        sub_limit: int = 100,
        max_frame_bytes: int = 65536,
        counting: Counting = Counting.PER_ITEM,
        channels: frozenset[str] | None = None,
        account: Account | None = None,
        meter: CreditMeter | None = None,
    ) -> None:
        self.registry = registry
        self.account = account
        self.meter = meter
        self.sub_limit = sub_limit
        self.max_frame_bytes = max_frame_bytes
        self.counting = counting
        self.allowed_channels = channels
        self.subscriptions: dict[str, Subscription] = {}
        # Per-request counting only: which request (group) added each topic.
        self._group_of: dict[str, int] = {}
        self._groups: dict[int, set[str]] = {}
        self._next_group = 0

    @property
    def sub_count(self) -> int:
        """Subscriptions active now, as the ack reports them."""
        if self.counting is Counting.PER_REQUEST:
            return len(self._groups)
        return len(self.subscriptions)

    # -- frames ------------------------------------------------------------------------------

    def receive_text(self, data: str | bytes, now_ms: int) -> list[Effect]:
        """Handle one text frame."""
        if not self._length_ok(data):
            return [self._error(ErrorCode.BAD_LENGTH, now_ms, self._length_detail(data))]
        try:
            request = decode_request(data)
        except RequestError as exc:
            return [self._error(exc.code, now_ms, exc.detail)]
        return self.handle(request, now_ms)

    def receive_binary(self, data: bytes, now_ms: int) -> list[Effect]:
        """Handle one binary frame: every request is a JSON text frame (§1)."""
        if not self._length_ok(data):
            return [self._error(ErrorCode.BAD_LENGTH, now_ms, self._length_detail(data))]
        return [
            self._error(
                ErrorCode.INVALID_REQUEST, now_ms, "Requests must be sent as JSON text frames."
            )
        ]

    def _length_ok(self, data: str | bytes) -> bool:
        if not data:
            return False
        # Characters are a lower bound of UTF-8 bytes and a quarter of the upper
        # bound, so only frames near the limit pay for measuring the exact size.
        if isinstance(data, str) and len(data) * 4 > self.max_frame_bytes:
            return len(data.encode()) <= self.max_frame_bytes
        return len(data) <= self.max_frame_bytes

    def _length_detail(self, data: str | bytes) -> str:
        if not data:
            return "Message must not be empty."
        return f"Message must be at most {self.max_frame_bytes} bytes."

    # -- requests ----------------------------------------------------------------------------

    def handle(self, request: Request, now_ms: int) -> list[Effect]:
        """Handle one decoded request; an unexpected failure answers 5001."""
        request_id: RequestId | UnsetType = UNSET if request.id is None else request.id
        try:
            return self._dispatch(request, request_id, now_ms)
        except RequestError as exc:
            return [self._error(exc.code, now_ms, exc.detail, request_id)]
        except Exception:
            # The method only: a hostile request can be too deep even to print.
            logger.exception("unexpected failure handling a %r request", request.method)
            return [self._error(ErrorCode.INTERNAL, now_ms, None, request_id)]

    def _dispatch(self, request: Request, rid: RequestId | UnsetType, now_ms: int) -> list[Effect]:
        method = request.method
        if method is UNSET:
            raise RequestError(ErrorCode.MISSING_FIELD, "Field 'method' is required.")
        if method == "ping":
            return [Reply(Pong(id=rid, ts=now_ms))]
        if method == "unsubscribe_all":
            return self._unsubscribe_all(rid)
        if method == "subscribe":
            return self._subscribe(request, rid)
        if method == "unsubscribe":
            return self._unsubscribe(request, rid)
        raise RequestError(
            ErrorCode.UNKNOWN_METHOD,
            f"Method '{method}' is not one of subscribe, unsubscribe, unsubscribe_all, ping.",
        )

    def _channel(self, request: Request) -> tuple[str, ChannelSpec]:
        channel = request.channel
        if channel is UNSET:
            raise RequestError(
                ErrorCode.MISSING_FIELD, f"Field 'channel' is required for '{request.method}'."
            )
        spec = self.registry.get(channel)
        if spec is None:
            raise RequestError(ErrorCode.UNKNOWN_CHANNEL, f"Channel '{channel}' does not exist.")
        if self.allowed_channels is not None and channel not in self.allowed_channels:
            raise RequestError(
                ErrorCode.CHANNEL_NOT_ON_PLAN, f"Channel '{channel}' is not included in your plan."
            )
        return channel, spec

    def _subscribe(self, request: Request, rid: RequestId | UnsetType) -> list[Effect]:
        channel, spec = self._channel(request)
        params = {} if request.params is UNSET else request.params
        selection = self.registry.select(spec, params)
        current = self.sub_count
        # More identities than the limit can never fit (under either counting);
        # refused before anything per identity is built, so a request's cost
        # is one pass over its items.
        if selection.size > self.sub_limit:
            raise self._over_limit(current, selection.size)
        new = [sub for sub in selection.subscriptions() if sub.topic not in self.subscriptions]
        if not new:
            return [Reply(self._ack(rid, channel, duplicate=True))]
        adding = len(new) if self.counting is Counting.PER_ITEM else 1
        if current + adding > self.sub_limit:
            raise self._over_limit(current, adding)
        self._charge(len(new))
        for sub in new:
            self.subscriptions[sub.topic] = sub
        if self.counting is Counting.PER_REQUEST:
            group = self._next_group
            self._next_group += 1
            self._groups[group] = {sub.topic for sub in new}
            for sub in new:
                self._group_of[sub.topic] = group
        return [Subscribe(tuple(new)), Reply(self._ack(rid, channel))]

    def _over_limit(self, current: int, requested: int) -> RequestError:
        return RequestError(
            ErrorCode.SUBSCRIPTION_LIMIT,
            "Subscription limit reached for this connection "
            f"(current={current}, requested={requested}, max={self.sub_limit}).",
        )

    def _charge(self, subscriptions: int) -> None:
        """Take the price of ``subscriptions`` new subscriptions, or refuse with 1010."""
        if self.account is None or self.meter is None:
            return
        cost = self.meter.for_subscriptions(subscriptions)
        if cost and not self.account.take(cost):
            raise RequestError(
                ErrorCode.CREDITS_EXHAUSTED,
                f"{subscriptions} new subscription(s) cost {format_credits(cost)} credits; "
                f"{format_credits(self.account.remaining)} remain this month.",
            )

    def _unsubscribe(self, request: Request, rid: RequestId | UnsetType) -> list[Effect]:
        channel, spec = self._channel(request)
        subscriptions = self.subscriptions
        if request.params is UNSET:
            topics = [t for t, sub in subscriptions.items() if sub.channel == channel]
        else:
            selection = self.registry.select(spec, request.params)
            # Walk whichever side is smaller: a huge request against a few
            # subscriptions costs as little as the subscriptions.
            if selection.size <= len(subscriptions):
                topics = [t for t in selection.topics() if t in subscriptions]
            else:
                topics = [t for t, sub in subscriptions.items() if selection.matches(sub)]
        self._remove(topics)
        ack = Reply(self._ack(rid, channel))
        return [Unsubscribe(tuple(topics)), ack] if topics else [ack]

    def _unsubscribe_all(self, rid: RequestId | UnsetType) -> list[Effect]:
        topics = tuple(self.subscriptions)
        self._remove(topics)
        ack = Reply(self._ack(rid, UNSET))
        return [Unsubscribe(topics), ack] if topics else [ack]

    def _remove(self, topics: Iterable[str]) -> None:
        per_request = self.counting is Counting.PER_REQUEST
        for topic in topics:
            del self.subscriptions[topic]
            if per_request:
                group = self._group_of.pop(topic)
                members = self._groups[group]
                members.discard(topic)
                if not members:
                    del self._groups[group]

    # -- replies -----------------------------------------------------------------------------

    def _ack(
        self, rid: RequestId | UnsetType, channel: str | UnsetType, *, duplicate: bool = False
    ) -> Ack:
        return Ack(
            id=rid,
            channel=channel,
            sub_count=self.sub_count,
            sub_limit=self.sub_limit,
            duplicate=True if duplicate else UNSET,
        )

    @staticmethod
    def _error(
        code: ErrorCode,
        now_ms: int,
        detail: str | None,
        rid: RequestId | UnsetType = UNSET,
    ) -> Reply:
        return Reply(error_message(code, now_ms, detail, rid))
