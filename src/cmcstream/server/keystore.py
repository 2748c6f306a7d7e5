"""API keys, their plans and their monthly usage, in a SQLite file.

Keys are read fresh on every connect, so ``cmcstream keys disable`` takes effect
on a running server. Usage (credits spent and ``data`` messages delivered per
calendar month, UTC) is accumulated in memory by the server and written here
in batches; it survives a restart.
"""

from __future__ import annotations

import enum
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cmcstream.protocol.plans import PLANS, get_plan

__all__ = ["KeyRecord", "KeyStatus", "KeyStore", "Usage", "month_of"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    plan TEXT NOT NULL,
    status TEXT NOT NULL,
    credits REAL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL,
    month TEXT NOT NULL,
    credits REAL NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, month)
);
"""


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


@dataclass(frozen=True, slots=True)
class Usage:
    """A key's usage in one month."""

    month: str
    credits: float = 0.0
    messages: int = 0


def month_of(now_ms: int) -> str:
    """The usage month (``YYYY-MM``, UTC) of an epoch-ms time."""
    return time.strftime("%Y-%m", time.gmtime(now_ms / 1000))


def new_key() -> str:
    """A fresh key in CoinMarketCap's shape (a UUID), from a secure source."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


class KeyStore:
    """The SQLite key store.

    Args:
        path: the database file (created with its folder if missing), or
            ``":memory:"``.
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        # The server uses the store from its event loop only; autocommit with
        # explicit transactions keeps each write durable as soon as it returns.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- keys --------------------------------------------------------------------------------

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
            ValueError: unknown plan or status, or a key that already exists.
        """
        if plan.lower() not in PLANS:
            raise ValueError(f"unknown plan {plan!r}; one of {', '.join(PLANS)}")
        record = KeyRecord(
            key=key or new_key(),
            name=name,
            plan=plan.lower(),
            status=KeyStatus(status),
            credits=credits,
            created_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000,
        )
        try:
            self._db.execute(
                "INSERT INTO keys (key, name, plan, status, credits, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.key,
                    record.name,
                    record.plan,
                    record.status.value,
                    record.credits,
                    record.created_ms,
                ),
            )
        except sqlite3.IntegrityError:
            raise ValueError("that key already exists") from None
        return record

    def get(self, key: str) -> KeyRecord | None:
        row = self._db.execute(
            "SELECT key, name, plan, status, credits, created_ms FROM keys WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _record(row)

    def list(self) -> list[KeyRecord]:
        rows = self._db.execute(
            "SELECT key, name, plan, status, credits, created_ms FROM keys ORDER BY created_ms, key"
        ).fetchall()
        return [_record(row) for row in rows]

    def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that exist."""
        wanted = list(keys)
        found: dict[str, KeyRecord] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                "SELECT key, name, plan, status, credits, created_ms FROM keys "
                f"WHERE key IN ({marks})",
                chunk,
            ):
                found[row[0]] = _record(row)
        return found

    def set_status(self, key: str, status: KeyStatus | str) -> bool:
        """Change a key's status; False when there is no such key."""
        cursor = self._db.execute(
            "UPDATE keys SET status = ? WHERE key = ?", (KeyStatus(status).value, key)
        )
        return cursor.rowcount > 0

    def delete(self, key: str) -> bool:
        """Remove a key and its usage; False when there is no such key."""
        with self._transaction():
            self._db.execute("DELETE FROM usage WHERE key = ?", (key,))
            cursor = self._db.execute("DELETE FROM keys WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    # -- usage -------------------------------------------------------------------------------

    def usage(self, key: str, month: str) -> Usage:
        row = self._db.execute(
            "SELECT credits, messages FROM usage WHERE key = ? AND month = ?", (key, month)
        ).fetchone()
        return Usage(month) if row is None else Usage(month, float(row[0]), int(row[1]))

    def add_usage(self, month: str, deltas: Mapping[str, tuple[float, int]]) -> None:
        """Add ``(credits, messages)`` to each key's usage of ``month``, in one transaction."""
        if not deltas:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO usage (key, month, credits, messages) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key, month) DO UPDATE SET "
                "credits = credits + excluded.credits, messages = messages + excluded.messages",
                [(key, month, c, m) for key, (c, m) in deltas.items()],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _record(row: tuple[str, str, str, str, float | None, int]) -> KeyRecord:
    return KeyRecord(
        key=row[0],
        name=row[1],
        plan=row[2],
        status=KeyStatus(row[3]),
        credits=row[4],
        created_ms=int(row[5]),
    )
