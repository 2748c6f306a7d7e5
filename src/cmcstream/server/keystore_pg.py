"""The PostgreSQL key store, for gateways on several machines sharing keys and usage.

``postgresql://user@host:5432/dbname`` (any libpq URL); the tables live in
their own schema, ``cmcstream`` unless the URL says ``?schema=NAME``, and are
created on first use. Several gateways may start at once and write the same
keys' usage at once: creation is serialised by an advisory lock, and usage
deltas are added by one ``INSERT … ON CONFLICT DO UPDATE`` in key order, so
concurrent batches neither lose an update nor deadlock.

:class:`PostgresKeyStore` is the blocking face (a small thread-safe pool);
:meth:`PostgresKeyStore.open_async` gives the gateway's, on psycopg's asyncio
connections, so usage writes and key look-ups never block its event loop. A
restarted server or a killed backend costs no call that can safely run again
on a new connection (see :class:`PostgresAsyncStore`).
"""

from __future__ import annotations

import asyncio
import builtins
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from cmcstream.server.store import (
    KeyRecord,
    KeyStatus,
    StoreUnavailable,
    Usage,
    UsageDeltas,
    new_record,
    record_of,
)

__all__ = ["DEFAULT_SCHEMA", "PostgresAsyncStore", "PostgresKeyStore"]

DEFAULT_SCHEMA = "cmcstream"

_POOL_SIZE = 4  # as many calls at once as the SQLite store's worker threads
_LOCK_TIMEOUT_S = 5.0  # as long as the SQLite store waits for a busy file
_CONNECT_TIMEOUT_S = 5.0

_COLUMNS = "key, name, plan, status, credits, created_ms"


class _Statements:
    """The store's SQL, with its schema's tables spelled out."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        ns = sql.Identifier(schema)
        keys = sql.SQL("{}.keys").format(ns)
        usage = sql.SQL("{}.usage").format(ns)
        self.ddl = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ns),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " key TEXT PRIMARY KEY,"
                " name TEXT NOT NULL DEFAULT '',"
                " plan TEXT NOT NULL,"
                " status TEXT NOT NULL,"
                " credits DOUBLE PRECISION,"
                " created_ms BIGINT NOT NULL)"
            ).format(keys),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " key TEXT NOT NULL,"
                " month TEXT NOT NULL,"
                " milli BIGINT NOT NULL DEFAULT 0,"
                " messages BIGINT NOT NULL DEFAULT 0,"
                " PRIMARY KEY (key, month))"
            ).format(usage),
        ]
        # One lock per schema, so gateways starting together create it once.
        self.ddl_lock = zlib.crc32(f"cmcstream schema {schema}".encode())
        select = sql.SQL(f"SELECT {_COLUMNS} FROM {{}}").format(keys)
        self.insert_key = sql.SQL(
            f"INSERT INTO {{}} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(keys)
        self.get = sql.SQL("{} WHERE key = %s").format(select)
        self.list = sql.SQL("{} ORDER BY created_ms, key").format(select)
        self.find = sql.SQL("{} WHERE key = ANY(%s)").format(select)
        self.set_status = sql.SQL("UPDATE {} SET status = %s WHERE key = %s").format(keys)
        self.delete_usage = sql.SQL("DELETE FROM {} WHERE key = %s").format(usage)
        self.delete_key = sql.SQL("DELETE FROM {} WHERE key = %s").format(keys)
        self.count = sql.SQL("SELECT COUNT(*) FROM {}").format(keys)
        self.usage = sql.SQL("SELECT milli, messages FROM {} WHERE key = %s AND month = %s").format(
            usage
        )
        # One statement for the whole batch. Its rows are locked in key order
        # by every writer, so two gateways adding to the same keys wait for
        # each other instead of deadlocking.
        self.add_usage = sql.SQL(
            "INSERT INTO {} AS u (key, month, milli, messages) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) "
            "ORDER BY 1, 2 "
            "ON CONFLICT (key, month) DO UPDATE SET "
            "milli = u.milli + EXCLUDED.milli, messages = u.messages + EXCLUDED.messages"
        ).format(usage)


def _usage_arrays(deltas: UsageDeltas) -> tuple[builtins.list[Any], ...]:
    """``add_usage``'s parameters: keys, months, milli-credits and messages."""
    rows = [(key, month, milli, n) for (month, key), (milli, n) in deltas.items()]
    return tuple(builtins.list(column) for column in zip(*rows, strict=True))


def _split_url(url: str) -> tuple[str, str, str]:
    """``(conninfo for libpq, schema, the URL without its password)``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for name, value in query if name == "schema"), DEFAULT_SCHEMA)
    if not schema:
        raise StoreUnavailable(f"empty schema in {url!r}")
    # libpq decodes %XX but not "+": spaces (in ``options``) must stay %20.
    rest = urlencode([(name, value) for name, value in query if name != "schema"], quote_via=quote)
    conninfo = urlunsplit(parts._replace(query=rest))
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    shown = urlunsplit(parts._replace(netloc=netloc))
    return conninfo, schema, shown


def _connection_kwargs(conninfo: str) -> dict[str, Any]:
    # Autocommit: every call states its own transaction, and an idle pooled
    # connection never holds one open. What the URL says wins over the defaults.
    given = conninfo_to_dict(conninfo)
    defaults = {"connect_timeout": int(_CONNECT_TIMEOUT_S), "application_name": "cmcstream"}
    return {"autocommit": True, **{k: v for k, v in defaults.items() if k not in given}}


def _lock_timeout(seconds: float) -> sql.Composed:
    return sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{round(seconds * 1000)}ms"))


class PostgresKeyStore:
    """The PostgreSQL key store (blocking face; see :class:`~cmcstream.server.store.Store`).

    Args:
        url: a ``postgresql://`` URL; ``?schema=NAME`` picks the schema
            (default ``cmcstream``), every other parameter goes to libpq.
        lock_timeout_s: how long a call waits for another writer's row lock
            before it fails.
        pool_size: connections per face (blocking and each async one).

    Raises:
        StoreUnavailable: the server cannot be reached or the tables cannot be created.
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout_s: float = _LOCK_TIMEOUT_S,
        pool_size: int = _POOL_SIZE,
    ) -> None:
        self._conninfo, schema, self._shown = _split_url(url)
        self._sql = _Statements(schema)
        self._lock_timeout_s = lock_timeout_s
        self._pool_size = pool_size
        try:
            with psycopg.connect(self._conninfo, **_connection_kwargs(self._conninfo)) as conn:
                self._create_schema(conn)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL at {self._shown}: {exc}") from None
        self._pool = ConnectionPool(
            self._conninfo,
            kwargs=_connection_kwargs(self._conninfo),
            min_size=1,
            max_size=pool_size,
            open=True,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=_CONNECT_TIMEOUT_S,
            name="cmcstream-keys",
        )

    @property
    def location(self) -> str:
        return self._shown

    @property
    def schema(self) -> str:
        return self._sql.schema

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        found = conn.execute(
            "SELECT COUNT(*) FROM pg_tables"
            " WHERE schemaname = %s AND tablename IN ('keys', 'usage')",
            (self._sql.schema,),
        ).fetchone()
        if found is not None and found[0] == 2:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._sql.ddl_lock,))
            for statement in self._sql.ddl:
                conn.execute(statement)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(_lock_timeout(self._lock_timeout_s))

    def open_async(self) -> PostgresAsyncStore:
        return PostgresAsyncStore(
            self._conninfo,
            self._sql,
            lock_timeout_s=self._lock_timeout_s,
            pool_size=self._pool_size,
        )

    def close(self) -> None:
        self._pool.close()

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
            with self._pool.connection() as conn:
                conn.execute(self._sql.insert_key, record.row)
        except psycopg.errors.UniqueViolation:
            raise ValueError("that key already exists") from None
        return record

    def get(self, key: str) -> KeyRecord | None:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.get, (key,)).fetchone()
        return None if row is None else record_of(row)

    def list(self) -> builtins.list[KeyRecord]:
        with self._pool.connection() as conn:
            rows = conn.execute(self._sql.list).fetchall()
        return [record_of(row) for row in rows]

    def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        wanted = builtins.list(keys)
        if not wanted:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute(self._sql.find, (wanted,)).fetchall()
        return {row[0]: record_of(row) for row in rows}

    def set_status(self, key: str, status: KeyStatus | str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(self._sql.set_status, (KeyStatus(status).value, key))
        return cursor.rowcount > 0

    def delete(self, key: str) -> bool:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(self._sql.delete_usage, (key,))
            cursor = conn.execute(self._sql.delete_key, (key,))
        return cursor.rowcount > 0

    def count(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.count).fetchone()
        assert row is not None
        return int(row[0])

    # -- usage -------------------------------------------------------------------------------

    def usage(self, key: str, month: str) -> Usage:
        with self._pool.connection() as conn:
            row = conn.execute(self._sql.usage, (key, month)).fetchone()
        return Usage(month) if row is None else Usage(month, int(row[0]), int(row[1]))

    def add_usage(self, deltas: UsageDeltas) -> None:
        if not deltas:
            return
        with self._pool.connection() as conn:
            conn.execute(self._sql.add_usage, _usage_arrays(deltas))


class PostgresAsyncStore:
    """The gateway's face of a :class:`PostgresKeyStore`, on asyncio connections.

    Its pool opens on the first call, in the loop that makes it. Connections
    are not checked before use (that would double every look-up's round
    trips); a call that finds its connection dead runs again on another,
    which is safe because nothing it did was committed: reads, and writes
    that fail before ``COMMIT``. A write that fails on its ``COMMIT`` is not
    tried again (it may have been applied) and raises.
    """

    def __init__(
        self, conninfo: str, statements: _Statements, *, lock_timeout_s: float, pool_size: int
    ) -> None:
        self._sql = statements
        self._lock_timeout_s = lock_timeout_s
        # Every pooled connection may be dead (a server restart): one more try
        # than there are of them reaches a new one.
        self._tries = pool_size + 1
        self._pool = AsyncConnectionPool(
            conninfo,
            kwargs=_connection_kwargs(conninfo),
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=self._configure,
            timeout=_CONNECT_TIMEOUT_S,
            name="cmcstream-keys-async",
        )
        self._opened = False
        self._opening = asyncio.Lock()

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(_lock_timeout(self._lock_timeout_s))

    async def _ready(self) -> AsyncConnectionPool:
        if not self._opened:
            async with self._opening:
                if not self._opened:
                    await self._pool.open()
                    self._opened = True
        return self._pool

    async def _read(self, query: sql.Composed, params: tuple[Any, ...]) -> builtins.list[Any]:
        pool = await self._ready()
        for attempt in range(self._tries):
            async with pool.connection() as conn:
                try:
                    return await (await conn.execute(query, params)).fetchall()
                except psycopg.OperationalError:
                    if not conn.broken or attempt + 1 == self._tries:
                        raise
            # The pool drops the dead connection on the way out.
        raise AssertionError("unreachable")

    async def get(self, key: str) -> KeyRecord | None:
        rows = await self._read(self._sql.get, (key,))
        return record_of(rows[0]) if rows else None

    async def find(self, keys: Iterable[str]) -> dict[str, KeyRecord]:
        wanted = list(keys)
        if not wanted:
            return {}
        rows = await self._read(self._sql.find, (wanted,))
        return {row[0]: record_of(row) for row in rows}

    async def usage(self, key: str, month: str) -> Usage:
        rows = await self._read(self._sql.usage, (key, month))
        return Usage(month, int(rows[0][0]), int(rows[0][1])) if rows else Usage(month)

    async def add_usage(self, deltas: UsageDeltas) -> None:
        if not deltas:
            return
        params = _usage_arrays(deltas)
        pool = await self._ready()
        for attempt in range(self._tries):
            async with pool.connection() as conn:
                try:
                    await conn.execute("BEGIN")
                    await conn.execute(self._sql.add_usage, params)
                except psycopg.OperationalError:
                    if not conn.broken or attempt + 1 == self._tries:
                        raise
                    continue  # not committed: safe to do again elsewhere
                await conn.execute("COMMIT")
                return

    async def aclose(self) -> None:
        if self._opened:
            await self._pool.close()
