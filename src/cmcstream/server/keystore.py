"""The SQLite key store: API keys, their plans and their monthly usage in one file.

Keys are read fresh on every connect, so ``cmcstream keys disable`` takes effect
on a running server. Usage (milli-credits spent and ``data`` messages delivered
per calendar month, UTC) is accumulated in memory by the server and written
here in batches; it survives a restart.

:class:`KeyStore` is the blocking :class:`~cmcstream.server.store.Store`, safe
to use from any thread (each thread has its own connection; WAL lets readers go
on while a writer waits for a lock). The gateway never calls it on its event
loop: :class:`StoreWorker`, its :class:`~cmcstream.server.store.AsyncStore`,
runs each call on a small thread pool and awaits it, so a locked or slow
database file delays only usage writes, never a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from cmcstream.server.store import (
    KeyRecord,
    KeyStatus,
    Usage,
    UsageDeltas,
    month_of,
    new_record,
    record_of,
)

__all__ = ["KeyRecord", "KeyStatus", "KeyStore", "StoreWorker", "Usage", "month_of"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

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
    milli INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, month)
);
"""

# user_version 1: usage in milli-credits (integers). Files from before kept
# credits as REAL; they are converted once, rounding to the nearest milli-credit.
_VERSION = 1
_MIGRATE_0_TO_1 = """
CREATE TABLE usage_milli (
    key TEXT NOT NULL,
    month TEXT NOT NULL,
    milli INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, month)
);
INSERT INTO usage_milli (key, month, milli, messages)
    SELECT key, month, CAST(ROUND(credits * 1000) AS INTEGER), messages FROM usage;
DROP TABLE usage;
ALTER TABLE usage_milli RENAME TO usage;
"""

_BUSY_TIMEOUT_S = 5.0


class KeyStore:
    """The SQLite key store.

    Args:
        path: the database file (created with its folder if missing), or
            ``":memory:"`` (one connection, shared by all threads under a lock).
        busy_timeout_s: how long a call waits for another writer's lock before
            it fails.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = _BUSY_TIMEOUT_S) -> None:
        self.path = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._memory = self.path == ":memory:"
        if not self._memory:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []
        self._shared = self._connect()
        self._migrate(self._shared)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit with explicit transactions: each write is durable as soon
        # as it returns.
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_s
        )
        self._use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._open.append(db)
        return db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        # Switching a new file to WAL answers "locked" at once, without waiting
        # for the busy timeout, while another process or thread switches it too.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version >= _VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(usage)")}
            if "credits" in columns:
                for statement in _MIGRATE_0_TO_1.split(";"):
                    if statement.strip():
                        db.execute(statement)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (the shared one, locked, for ``:memory:``)."""
        if self._memory:
            with self._lock:
                yield self._shared
            return
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        yield db

    @property
    def location(self) -> str:
        return self.path

    def open_async(self) -> StoreWorker:
        return StoreWorker(self)

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, []
        for db in connections:
            db.close()

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
        """Add a key and return it (see :meth:`Store.create`)."""
        record = new_record(
            plan=plan, status=status, credits=credits, name=name, key=key, now_ms=now_ms
        )
        try:
            with self._db() as db:
                db.execute(
                    "INSERT INTO keys (key, name, plan, status, credits, created_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    record.row,
                )
        except sqlite3.IntegrityError:
            raise ValueError("that key already exists") from None
        return record

    def get(self, key: str) -> KeyRecord | None:
        with self._db() as db:
            row = db.execute(
                "SELECT key, name, plan, status, credits, created_ms FROM keys WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else record_of(row)

    def list(self) -> list[KeyRecord]:
        with self._db() as db:
            rows = db.execute(
                "SELECT key, name, plan, status, credits, created_ms FROM keys "
                "ORDER BY created_ms, key"
            ).fetchall()
        return [record_of(row) for row in rows]

    def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that exist."""
        wanted = list(keys)
        found: dict[str, KeyRecord] = {}
        with self._db() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                    "SELECT key, name, plan, status, credits, created_ms FROM keys "
                    f"WHERE key IN ({marks})",
                    chunk,
                ):
                    found[row[0]] = record_of(row)
        return found

    def set_status(self, key: str, status: KeyStatus | str) -> bool:
        """Change a key's status; False when there is no such key."""
        with self._db() as db:
            cursor = db.execute(
                "UPDATE keys SET status = ? WHERE key = ?", (KeyStatus(status).value, key)
            )
        return cursor.rowcount > 0

    def delete(self, key: str) -> bool:
        """Remove a key and its usage; False when there is no such key."""
        with self._db() as db, _transaction(db):
            db.execute("DELETE FROM usage WHERE key = ?", (key,))
            cursor = db.execute("DELETE FROM keys WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    # -- usage -------------------------------------------------------------------------------

    def usage(self, key: str, month: str) -> Usage:
        with self._db() as db:
            row = db.execute(
                "SELECT milli, messages FROM usage WHERE key = ? AND month = ?", (key, month)
            ).fetchone()
        return Usage(month) if row is None else Usage(month, int(row[0]), int(row[1]))

    def add_usage(self, deltas: UsageDeltas) -> None:
        """Add ``(milli, messages)`` to the usage of each ``(month, key)``, in one transaction."""
        if not deltas:
            return
        with self._db() as db, _transaction(db):
            db.executemany(
                "INSERT INTO usage (key, month, milli, messages) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key, month) DO UPDATE SET "
                "milli = milli + excluded.milli, messages = messages + excluded.messages",
                [(key, month, c, m) for (month, key), (c, m) in deltas.items()],
            )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class StoreWorker:
    """A :class:`KeyStore`'s calls off the event loop, on a few threads of their own.

    Several threads, so a usage write stuck behind someone else's lock on the
    file does not hold up the key look-ups of connecting clients.

    Args:
        store: the store (the worker does not close it).
        threads: how many calls may run at once.
    """

    def __init__(self, store: KeyStore, threads: int = 4) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cmcstream-store")

    async def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn(*args, **kwargs)`` on the worker's threads and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def get(self, key: str) -> KeyRecord | None:
        return await self.call(self.store.get, key)

    async def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        return await self.call(self.store.find, list(keys))

    async def usage(self, key: str, month: str) -> Usage:
        return await self.call(self.store.usage, key, month)

    async def add_usage(self, deltas: UsageDeltas) -> None:
        await self.call(self.store.add_usage, dict(deltas))

    def close(self) -> None:
        """Stop the threads once the calls already running have returned."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
