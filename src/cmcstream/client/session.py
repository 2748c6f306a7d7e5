"""One connection's protocol logic, with no I/O: what the link sends, and what it reads.

The link (:mod:`cmcstream.client.link`) owns the socket and the timers; it asks
a :class:`ClientSession` for every decision:

* requests: the frame to send (with a fresh id), and, for each ``ack`` or
  ``error`` read, which waiting request it answers;
* the end of a connection: from its close code, the error frames read before
  it and the handshake's HTTP status, whether to reconnect, reconnect with the
  longer backoff (close 4004), or fail with a typed error (close 4100/4101/4102,
  an auth error frame); the close codes' ``fatal`` flags and the error codes
  are the protocol's table (:mod:`cmcstream.protocol.codes`);
* the reconnect schedule: how long to wait, or when to give up;
* the restore plan: after a reconnect, the subscribe requests that bring back
  everything the connection held, one per channel and scalar params.

What the link waits on an answer with is opaque here (``W``: the link uses
asyncio futures), so every decision is a plain function of plain values.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import msgspec

from cmcstream.client.backoff import Backoff
from cmcstream.client.frames import Envelope
from cmcstream.client.items import Item, buckets, request_of
from cmcstream.exceptions import (
    AuthError,
    CMCStreamError,
    ConnectionLimited,
    ConnectionLost,
    auth_error_for_close,
    error_for_status,
)
from cmcstream.protocol.codes import CLOSE_CODES, CloseCode, ErrorCode

__all__ = [
    "SILENCE",
    "Answer",
    "ClientSession",
    "Ending",
    "GiveUp",
    "Notice",
    "Refused",
    "Resubscribe",
    "Retry",
    "Verdict",
    "restore_plan",
]

W = TypeVar("W")

ABNORMAL: Final = 1006  # RFC 6455: no close frame was received
DEFAULT_PING_INTERVAL_S: Final = 10.0
DEFAULT_SUB_LIMIT: Final = 100

_encode = msgspec.json.Encoder().encode

# Closes that mean "the key has all its connections" (4004): retried, but slowly.
_LIMITED_CLOSES: Final = frozenset(
    int(code) for code, spec in CLOSE_CODES.items() if spec.error is ErrorCode.CONNECTION_LIMIT
)


class Verdict(enum.Enum):
    """What a connection's end calls for."""

    RETRY = "retry"
    LIMITED = "limited"  # retry, on the longer backoff: the key has all its connections
    FATAL = "fatal"  # never retry: the key, its plan or its credits refuse


@dataclass(frozen=True, slots=True)
class Ending:
    """How a connection ended.

    Attributes:
        reason: what ended it, as state changes and outages report it.
        verdict: what it calls for.
        error: the typed error the stream fails with, when fatal.
        code: the close code, when a close was read (or stands for the end).
    """

    reason: str
    verdict: Verdict = Verdict.RETRY
    error: CMCStreamError | None = None
    code: int | None = None


SILENCE: Final = Ending(f"closed {ABNORMAL} (silence: no frame within the watchdog limit)")


@dataclass(frozen=True, slots=True)
class Answer(Generic[W]):
    """An ``ack`` (the envelope) or ``error`` (the typed error) for a waiting request."""

    waiter: W
    result: Envelope | CMCStreamError


@dataclass(frozen=True, slots=True)
class Refused:
    """An auth error frame for no request (1010 and friends): the close that follows is final."""

    error: AuthError


@dataclass(frozen=True, slots=True)
class Notice:
    """Any other error frame for no request: worth a log line, nothing more."""

    error: CMCStreamError


@dataclass(frozen=True, slots=True)
class Retry:
    """Reconnect after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: the stream fails with ``error``."""

    error: CMCStreamError


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """One request of a restore plan: ``message`` subscribes exactly ``members``."""

    members: list[Item]
    message: dict[str, Any]


def restore_plan(items: Iterable[Item]) -> list[Resubscribe]:
    """The subscribe requests that restore ``items``: one per channel and scalar params."""
    plan = []
    for members in buckets(list(items)):
        channel, params = request_of(members)
        plan.append(
            Resubscribe(members, {"method": "subscribe", "channel": channel, "params": params})
        )
    return plan


@dataclass(slots=True)
class _Pending(Generic[W]):
    waiter: W
    on_ack: Callable[[Envelope], None] | None


class ClientSession(Generic[W]):
    """The requests, answers and ends of one link's connections, one after another.

    Attributes:
        sub_count: subscriptions the server counts on the connection (last ack).
        sub_limit: the per-connection limit the server announced (last ack).
    """

    def __init__(
        self,
        index: int,
        next_id: Callable[[], int],
        *,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        ping_interval_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """
        Args:
            index: which connection of the stream (for error messages).
            next_id: hands out request ids (unique across the stream's links).
            backoff: the reconnect schedule.
            reconnect: re-establish dropped connections at all.
            ping_interval_s: overrides the welcome's ``ping_interval_ms``.
            rng: draws the jitter of reconnect delays.
        """
        self.index = index
        self._next_id = next_id
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self._ping_override = ping_interval_s
        self._rng = rng or random.Random()
        self._pending: dict[Any, _Pending[W]] = {}
        self._refusal: CMCStreamError | None = None
        self._attempt = 0
        self.sub_count = 0
        self.sub_limit = DEFAULT_SUB_LIMIT

    # -- requests ------------------------------------------------------------------------------

    def request(
        self,
        message: dict[str, Any],
        waiter: W,
        on_ack: Callable[[Envelope], None] | None = None,
    ) -> tuple[int, str]:
        """Register a request; returns its id and the frame to send.

        ``on_ack`` runs as its ack is read (:meth:`receive`), before anything
        read after it.
        """
        rid = self._next_id()
        self._pending[rid] = _Pending(waiter, on_ack)
        return rid, _encode({"id": rid, **message}).decode()

    def ping(self) -> str:
        """A ``ping`` frame with a fresh id (its ``pong`` answers no one)."""
        return _encode({"id": self._next_id(), "method": "ping"}).decode()

    def forget(self, rid: int) -> None:
        """The request ``rid`` is no longer waited for (answered, timed out, or abandoned)."""
        self._pending.pop(rid, None)

    def drain(self) -> list[W]:
        """Every request still waiting, forgotten: none will be answered on this connection."""
        waiters = [pending.waiter for pending in self._pending.values()]
        self._pending.clear()
        return waiters

    @property
    def waiting(self) -> int:
        """Requests waiting for an answer."""
        return len(self._pending)

    # -- what the server sends -------------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: nothing read on it yet."""
        self._refusal = None

    def welcome(self, env: Envelope) -> float | None:
        """Read a frame that came before the ``welcome``.

        Returns the ping interval in seconds once ``env`` is the welcome, else
        ``None``. An error frame is remembered: it names why the close that
        follows came.
        """
        if env.type == "welcome":
            self._refusal = None  # admitted after all: an earlier error frame was no refusal
            interval = self._ping_override
            if interval is None and env.ping_interval_ms:
                interval = env.ping_interval_ms / 1000
            return interval or DEFAULT_PING_INTERVAL_S
        if env.type == "error" and env.status is not None:
            self._refusal = error_for_status(env.status)
        return None

    def receive(self, env: Envelope) -> Answer[W] | Refused | Notice | None:
        """Read a frame that is not a push (after the ``welcome``).

        Returns what it means: the :class:`Answer` to a waiting request, an
        auth error for no request (:class:`Refused`: it ends the link), any
        other error for no request (:class:`Notice`), or ``None`` (a pong, an
        unknown type, an answer no one waits for any more: they only prove the
        connection is alive).
        """
        if env.type == "ack":
            if env.sub_count is not None:
                self.sub_count = env.sub_count
            if env.sub_limit is not None:
                self.sub_limit = env.sub_limit
            pending = self._pending.pop(env.id, None) if env.id is not None else None
            if pending is None:
                return None
            if pending.on_ack is not None:
                pending.on_ack(env)
            return Answer(pending.waiter, env)
        if env.type == "error":
            pending = self._pending.pop(env.id, None) if env.id is not None else None
            error = error_for_status(env.status or {})
            if pending is not None:
                return Answer(pending.waiter, error)
            if isinstance(error, AuthError):
                self._refusal = error
                return Refused(error)
            return Notice(error)
        return None

    # -- how a connection ends -------------------------------------------------------------------

    def closed(self, code: int | None, reason: str = "") -> Ending:
        """The connection ended with close ``code`` (``None``: no close frame was read).

        A close code that is fatal in the protocol's table fails the stream
        with its typed error; an auth error frame read before names the cause
        more precisely than the close code, and makes even a normal close
        final (1010 comes with close 1000). Close 4004, or error 2304 before a
        close, calls for the longer backoff.
        """
        if code is None:
            code, reason = ABNORMAL, reason or "connection lost"
        refusal = self._refusal
        fatal: CMCStreamError | None = auth_error_for_close(code, reason)
        if isinstance(refusal, AuthError):
            fatal = refusal
        elif isinstance(refusal, ConnectionLimited):
            code = int(CloseCode.CONNECTION_LIMIT)
        text = f"closed {code}" + (f" ({reason})" if reason else "")
        if fatal is not None:
            return Ending(text, Verdict.FATAL, fatal, code)
        if code in _LIMITED_CLOSES:
            return Ending(text, Verdict.LIMITED, None, code)
        return Ending(text, Verdict.RETRY, None, code)

    @staticmethod
    def rejected(status: int, reason: str) -> Ending:
        """The handshake was answered with HTTP ``status`` instead of a WebSocket."""
        if status in (401, 403):
            # A server that refuses the key before the upgrade: as close 4100.
            error = auth_error_for_close(CloseCode.KEY_INVALID, f"HTTP {status}")
            return Ending(reason, Verdict.FATAL, error)
        return Ending(reason)

    @staticmethod
    def failed(reason: str) -> Ending:
        """The connection could not be made or broke without a close (reset, timeout)."""
        return Ending(reason)

    # -- what comes next -------------------------------------------------------------------------

    def next_step(self, ending: Ending, *, opened: bool, uptime: float) -> Retry | GiveUp:
        """After ``ending``: reconnect after a delay, or give up.

        Args:
            ending: how the connection ended.
            opened: a first connection was ever open (the first must succeed).
            uptime: seconds the connection (or attempt) lasted; one that stayed
                up long enough resets the attempt counter.
        """
        if ending.verdict is Verdict.FATAL:
            assert ending.error is not None
            return GiveUp(ending.error)
        if uptime >= self.backoff.reset_after_s:
            self._attempt = 0
        self._attempt += 1
        limited = ending.verdict is Verdict.LIMITED
        max_attempts = self.backoff.max_attempts
        if (
            not opened
            or not self.reconnect
            or (max_attempts is not None and self._attempt > max_attempts)
        ):
            kind = ConnectionLimited if limited else ConnectionLost
            return GiveUp(kind(f"connection {self.index} lost: {ending.reason}"))
        return Retry(self.backoff.delay(self._attempt, limited=limited, rng=self._rng))
