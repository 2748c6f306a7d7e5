"""The key store's contract: API keys, their plans and their monthly usage.

Two stores implement it: SQLite (:mod:`cmcstream.server.keystore`, one file,
the default) and PostgreSQL (:mod:`cmcstream.server.keystore_pg`, shared by
gateways on several machines). Each has two faces:

- :class:`Store`, blocking, for the ``keys`` commands, start-up and tests;
- :class:`AsyncStore`, what the gateway awaits on its event loop (key look-ups
  at connect, usage reads and writes). A slow or locked database delays only
  those awaits, never the loop.

Usage is kept in integer milli-credits (and ``data`` messages delivered) per
key and calendar month (UTC); :meth:`Store.add_usage` adds deltas atomically,
so several gateways may write the same key's usage at once.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cmcstream.protocol.billing import MILLI, format_credits, to_milli
from cmcstream.protocol.plans import PLANS, get_plan

__all__ = [
    "AsyncStore",
    "KeyRecord",
    "KeyStatus",
    "Store",
    "StoreUnavailable",
    "Usage",
    "UsageDeltas",
    "key_id",
    "month_of",
    "new_key",
    "new_record",
    "record_of",
]

UsageDeltas = Mapping[tuple[str, str], tuple[int, int]]
"""``(month, key) -> (milli-credits, messages)`` to add."""


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # created but not activated: error 1003 at connect
    EXPIRED = "expired"  # plan expired: error 1004 at connect
    DISABLED = "disabled"  # close 4101 at connect


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key.

    Attributes:
        key: the secret itself.
        name: a label for humans.
        plan: the plan name (see :mod:`cmcstream.protocol.plans`).
        status: what connect-time checks make of it.
        credits: monthly credits for this key; ``None`` uses the plan's.
        created_ms: creation time, epoch ms.
    """

    key: str
    name: str
    plan: str
    status: KeyStatus
    credits: float | None
    created_ms: int

    @property
    def monthly_credits(self) -> float:
        return self.credits if self.credits is not None else get_plan(self.plan).monthly_credits

    @property
    def monthly_milli(self) -> int:
        """The month's allowance in milli-credits."""
        return to_milli(self.monthly_credits)

    @property
    def row(self) -> tuple[str, str, str, str, float | None, int]:
        """The columns of its row in a store: key, name, plan, status, credits, created_ms."""
        return (self.key, self.name, self.plan, self.status.value, self.credits, self.created_ms)


@dataclass(frozen=True, slots=True)
class Usage:
    """A key's usage in one month."""

    month: str
    milli: int = 0
    messages: int = 0

    @property
    def credits(self) -> float:
        return self.milli / MILLI

    @property
    def credits_text(self) -> str:
        """Credits spent, exactly (``12.5``)."""
        return format_credits(self.milli)


def month_of(now_ms: int) -> str:
    """The usage month (``YYYY-MM``, UTC) of an epoch-ms time."""
    return time.strftime("%Y-%m", time.gmtime(now_ms / 1000))


def key_id(key: str) -> str:
    """A key's public name: the start of its SHA-256, which logs and the admin API show.

    It cannot be turned back into the key (122 random bits), yet names one key
    among any realistic number of them.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def new_key() -> str:
    """A fresh key in CoinMarketCap's shape (a UUID), from a secure source."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


def new_record(
    *,
    plan: str,
    status: KeyStatus | str,
    credits: float | None,
    name: str,
    key: str | None,
    now_ms: int | None,
) -> KeyRecord:
    """The record :meth:`Store.create` inserts, validated.

    Raises:
        ValueError: unknown plan or status, or credits finer than 0.001.
    """
    if plan.lower() not in PLANS:
        raise ValueError(f"unknown plan {plan!r}; one of {', '.join(PLANS)}")
    if credits is not None:
        to_milli(credits)  # validates: whole milli-credits only
    return KeyRecord(
        key=key or new_key(),
        name=name,
        plan=plan.lower(),
        status=KeyStatus(status),
        credits=credits,
        created_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000,
    )


def record_of(row: tuple[str, str, str, str, float | None, int]) -> KeyRecord:
    """A :class:`KeyRecord` from ``key, name, plan, status, credits, created_ms``."""
    return KeyRecord(
        key=row[0],
        name=row[1],
        plan=row[2],
        status=KeyStatus(row[3]),
        credits=row[4],
        created_ms=int(row[5]),
    )


class AsyncStore(Protocol):
    """The gateway's face of a store: every call is awaited without blocking the loop.

    A call that fails raises (the usage ledger keeps what it could not write
    and tries again); a store reconnects by itself on the next call.
    """

    async def get(self, key: str) -> KeyRecord | None: ...

    async def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that exist."""
        ...

    async def usage(self, key: str, month: str) -> Usage: ...

    async def add_usage(self, deltas: UsageDeltas) -> None:
        """Add every delta, all or none."""
        ...

    async def aclose(self) -> None:
        """Release connections once the calls already running have returned."""
        ...


class Store(Protocol):
    """The blocking face of a store, safe to call from any thread."""

    @property
    def location(self) -> str:
        """Where the data lives, for humans (no password)."""
        ...

    def create(
        self,
        *,
        plan: str = "startup",
        status: KeyStatus | str = KeyStatus.ACTIVE,
        credits: float | None = None,
        name: str = "",
        key: str | None = None,
        now_ms: int | None = None,
    ) -> KeyRecord:
        """Add a key and return it.

        Raises:
            ValueError: unknown plan or status, credits finer than 0.001, or a
                key that already exists.
        """
        ...

    def get(self, key: str) -> KeyRecord | None: ...

    def list(self) -> builtins.list[KeyRecord]:
        """Every key, oldest first."""
        ...

    def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that exist."""
        ...

    def set_status(self, key: str, status: KeyStatus | str) -> bool:
        """Change a key's status; False when there is no such key."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a key and its usage; False when there is no such key."""
        ...

    def count(self) -> int: ...

    def usage(self, key: str, month: str) -> Usage: ...

    def add_usage(self, deltas: UsageDeltas) -> None:
        """Add every delta, all or none."""
        ...

    def open_async(self) -> AsyncStore:
        """A new async face on the same data, for one event loop; the caller closes it."""
        ...

    def close(self) -> None: ...


class StoreUnavailable(Exception):
    """The key store cannot be opened (unreachable server, missing driver, bad URL)."""
