"""The key store's contract, run against every store: SQLite and PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (``CMCSTREAM_TEST_POSTGRES`` to
point elsewhere); each test works in a schema of its own and drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from websockets.sync.client import connect

from cmcstream.cli import main
from cmcstream.server.auth import HEADER
from cmcstream.server.keystore import KeyStore
from cmcstream.server.keystore_pg import PostgresKeyStore
from cmcstream.server.store import AsyncStore, KeyStatus, Store, month_of
from cmcstream.server.stores import open_store
from cmcstream.server.usage import UsageLedger
from cmcstream.testing import running_server
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed

MONTH = "2026-12"
DEC = 1_796_083_200_000  # 2026-12-01T00:00Z

_PG_CANDIDATES = (
    [os.environ["CMCSTREAM_TEST_POSTGRES"]]
    if os.environ.get("CMCSTREAM_TEST_POSTGRES")
    else ["postgresql://127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"]
)
_pg_base: str | None = None


def postgres_base() -> str:
    """The test server's URL; a test that needs it fails (never skips) without it."""
    global _pg_base
    if _pg_base is None:
        errors = []
        for url in _PG_CANDIDATES:
            try:
                with psycopg.connect(url, connect_timeout=5):
                    _pg_base = url
                    break
            except psycopg.Error as exc:
                errors.append(f"{url}: {exc}")
        else:
            pytest.fail("PostgreSQL is not reachable: " + "; ".join(errors))
    return _pg_base


@dataclass
class Backend:
    """One store's way to open itself and to get in its own way."""

    name: str
    location: str
    open: Callable[..., Store]
    lock_usage: Callable[[str, str], contextlib.AbstractContextManager[None]]
    opened: list[Store] = field(default_factory=list)

    def store(self, **kwargs: Any) -> Store:
        store = self.open(**kwargs)
        self.opened.append(store)
        return store

    @contextlib.contextmanager
    def hold_usage_lock(self, key: str, month: str, at_most: float = 3.0) -> Iterator[None]:
        """Hold a write lock on a usage row from another connection and thread.

        Released on leaving, or after ``at_most`` seconds whatever happens, so a
        store that wrongly blocks the test's own thread still gets it back.
        """
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with self.lock_usage(key, month):
                held.set()
                release.wait(at_most)

        thread = threading.Thread(target=holder)
        thread.start()
        try:
            assert held.wait(5), "the lock was not taken"
            yield
        finally:
            release.set()
            thread.join()


def sqlite_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "keys.db"

    def open_(lock_timeout_s: float = 5.0) -> Store:
        return KeyStore(path, busy_timeout_s=lock_timeout_s)

    @contextlib.contextmanager
    def hold(key: str, month: str) -> Iterator[None]:
        # SQLite locks the whole file for writing.
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()

    return Backend("sqlite", str(path), open_, hold)


def postgres_backend(schema: str) -> Backend:
    base = postgres_base()
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}&application_name={schema}"

    def open_(lock_timeout_s: float = 5.0) -> Store:
        return PostgresKeyStore(url, lock_timeout_s=lock_timeout_s)

    @contextlib.contextmanager
    def hold(key: str, month: str) -> Iterator[None]:
        with psycopg.connect(base, autocommit=True) as conn:
            table = f'"{schema}".usage'
            conn.execute(
                f"INSERT INTO {table} (key, month) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (key, month),
            )
            conn.execute("BEGIN")
            conn.execute(
                f"SELECT * FROM {table} WHERE key = %s AND month = %s FOR UPDATE", (key, month)
            )
            try:
                yield
            finally:
                conn.execute("ROLLBACK")

    return Backend("postgresql", url, open_, hold)


def drop_schema(schema: str) -> None:
    with psycopg.connect(postgres_base(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    schema = f"cmcstream_test_{uuid.uuid4().hex[:12]}"
    made = sqlite_backend(tmp_path) if request.param == "sqlite" else postgres_backend(schema)
    try:
        yield made
    finally:
        for store in made.opened:
            store.close()
        if request.param == "postgresql":
            drop_schema(schema)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store()


@pytest.fixture
async def aio(store: Store) -> AsyncIterator[AsyncStore]:
    face = store.open_async()
    try:
        yield face
    finally:
        await face.aclose()


# -- keys --------------------------------------------------------------------------------------


def test_keys_are_created_found_changed_and_deleted(store: Store) -> None:
    first = store.create(plan="Professional", name="ci", now_ms=1000)
    second = store.create(status="inactive", credits=12.5, key="k-2", now_ms=2000)
    assert store.get(first.key) == first
    assert first.plan == "professional"
    assert second.status is KeyStatus.INACTIVE
    assert second.monthly_milli == 12_500
    assert store.list() == [first, second]
    assert store.find([second.key, "nope", first.key]) == {first.key: first, second.key: second}
    assert store.find([]) == {}
    assert store.count() == 2
    with pytest.raises(ValueError, match="already exists"):
        store.create(key="k-2")
    with pytest.raises(ValueError, match="unknown plan"):
        store.create(plan="free")
    with pytest.raises(ValueError, match=r"multiple of 0\.001"):
        store.create(credits=0.0001)
    assert store.set_status("k-2", KeyStatus.DISABLED)
    assert not store.set_status("nope", KeyStatus.DISABLED)
    updated = store.get("k-2")
    assert updated is not None
    assert updated.status is KeyStatus.DISABLED
    store.add_usage({(MONTH, "k-2"): (5, 1)})
    assert store.delete("k-2")
    assert not store.delete("k-2")
    assert store.get("k-2") is None
    assert store.usage("k-2", MONTH).milli == 0  # the usage went with the key
    assert store.count() == 1


async def test_the_async_face_sees_what_the_blocking_one_wrote(
    store: Store, aio: AsyncStore
) -> None:
    record = store.create(credits=3)
    store.add_usage({(MONTH, record.key): (1500, 7)})
    assert await aio.get(record.key) == record
    assert await aio.get("nope") is None
    assert await aio.find([record.key, "nope"]) == {record.key: record}
    usage = await aio.usage(record.key, MONTH)
    assert (usage.milli, usage.messages, usage.credits_text) == (1500, 7, "1.5")
    await aio.add_usage({(MONTH, record.key): (500, 1), ("2027-01", record.key): (1, 1)})
    assert store.usage(record.key, MONTH).milli == 2000
    assert store.usage(record.key, "2027-01").messages == 1
    assert (await aio.usage("nope", MONTH)).milli == 0


# -- usage under concurrency ----------------------------------------------------------------------


async def test_concurrent_batches_from_many_tasks_sum_exactly(aio: AsyncStore) -> None:
    # Overlapping keys in shuffled orders: batches that lock rows in different
    # orders would deadlock one another.
    keys = [f"key-{i}" for i in range(12)]
    rng = random.Random(7)

    async def writer() -> None:
        for _ in range(15):
            batch = rng.sample(keys, len(keys))
            await aio.add_usage({(MONTH, key): (3, 1) for key in batch})

    await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(8))), 60)
    for key in keys:
        usage = await aio.usage(key, MONTH)
        assert (usage.milli, usage.messages) == (8 * 15 * 3, 8 * 15)


def test_concurrent_batches_from_threads_of_several_stores_sum_exactly(backend: Backend) -> None:
    # Two stores on the same data stand for two gateway processes; every batch
    # names the same keys in its own order, so writers that lock rows in the
    # order they were given deadlock one another.
    stores = [backend.store(), backend.store()]
    keys = [f"key-{i}" for i in range(30)]

    def writer(n: int) -> None:
        rng = random.Random(n)
        for _ in range(10):
            stores[n % 2].add_usage({(MONTH, key): (7, 2) for key in rng.sample(keys, len(keys))})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    for n, key in enumerate(keys):
        usage = stores[n % 2].usage(key, MONTH)
        assert (usage.milli, usage.messages) == (4 * 10 * 7, 4 * 10 * 2)


def test_stores_opened_at_once_on_a_new_database_create_it_once(backend: Backend) -> None:
    barrier = threading.Barrier(12)

    def opener(n: int) -> None:
        barrier.wait(timeout=10)
        store = backend.open()
        try:
            store.add_usage({(MONTH, "shared"): (1, 1)})
        finally:
            store.close()

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(opener, range(12)))
    assert backend.store().usage("shared", MONTH).milli == 12


# -- failures and the event loop -----------------------------------------------------------------


async def test_a_write_stuck_behind_a_lock_fails_and_the_ledger_keeps_its_totals(
    backend: Backend,
) -> None:
    store = backend.store(lock_timeout_s=0.3)
    record = store.create(credits=10)
    aio = store.open_async()
    ledger = UsageLedger(aio)
    try:
        account = await ledger.account(record, DEC)
        assert account.take(2500)
        account.delivered(3)
        with backend.hold_usage_lock(record.key, MONTH):
            assert not await asyncio.wait_for(ledger.flush(), 10)
        assert ledger.failed_flushes == 1
        assert ledger.unsaved == (2500, 3)
        assert await ledger.flush()
        assert ledger.unsaved == (0, 0)
    finally:
        await aio.aclose()
    usage = store.usage(record.key, MONTH)
    assert (usage.milli, usage.messages) == (2500, 3)


async def test_a_stuck_usage_write_blocks_neither_the_loop_nor_key_look_ups(
    backend: Backend,
) -> None:
    store = backend.store()
    record = store.create()
    aio = store.open_async()
    loop = asyncio.get_running_loop()
    try:
        await aio.usage(record.key, MONTH)  # connections open before the clock starts
        with backend.hold_usage_lock(record.key, MONTH):
            write = asyncio.create_task(aio.add_usage({(MONTH, record.key): (42, 1)}))
            gaps = []
            last = loop.time()
            end = last + 0.6
            while loop.time() < end:
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now
            assert not write.done()  # it is indeed waiting for the lock
            assert max(gaps) < 0.3, max(gaps)
            started = loop.time()
            assert await asyncio.wait_for(aio.get(record.key), 2) == record
            assert loop.time() - started < 1.0
        await asyncio.wait_for(write, 5)
    finally:
        await aio.aclose()
    assert store.usage(record.key, MONTH).milli == 42


# -- PostgreSQL connections that die -------------------------------------------------------------


@pytest.fixture
def pg() -> Iterator[tuple[Backend, str]]:
    schema = f"cmcstream_test_{uuid.uuid4().hex[:12]}"
    made = postgres_backend(schema)
    try:
        yield made, schema
    finally:
        for store in made.opened:
            store.close()
        drop_schema(schema)


def terminate(schema: str, *, waiting_on_lock: bool = False) -> int:
    """Kill the store's server connections (only those waiting for a lock); how many."""
    with psycopg.connect(postgres_base(), autocommit=True) as conn:
        condition = " AND wait_event_type = 'Lock'" if waiting_on_lock else ""
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = %s AND pid <> pg_backend_pid(){condition}",
            (schema,),
        ).fetchall()
    return len(rows)


async def killed_while_waiting(schema: str, times: int) -> None:
    """Kill the store's connections waiting for a lock, ``times`` times, within 10 s."""
    async with asyncio.timeout(10):
        while times:
            times -= await asyncio.to_thread(terminate, schema, waiting_on_lock=True)
            await asyncio.sleep(0.01)


async def test_a_write_killed_before_it_commits_lands_once_on_a_new_connection(
    pg: tuple[Backend, str],
) -> None:
    backend, schema = pg
    store = backend.store()
    record = store.create(credits=10)
    aio = store.open_async()
    ledger = UsageLedger(aio)
    try:
        account = await ledger.account(record, DEC)
        assert account.take(1200)
        with backend.hold_usage_lock(record.key, MONTH):
            flush = asyncio.create_task(ledger.flush())
            await killed_while_waiting(schema, 1)
            await asyncio.sleep(0.1)
            assert not flush.done()  # tried again, waiting for the lock again
        assert await asyncio.wait_for(flush, 5)
        assert ledger.failed_flushes == 0
    finally:
        await aio.aclose()
    assert store.usage(record.key, MONTH).milli == 1200  # once, not twice


async def test_a_write_killed_on_every_try_fails_and_the_next_reconnects(
    pg: tuple[Backend, str],
) -> None:
    backend, schema = pg
    store = backend.store()
    record = store.create(credits=10)
    aio = store.open_async()
    ledger = UsageLedger(aio)
    try:
        account = await ledger.account(record, DEC)
        assert account.take(1200)
        with backend.hold_usage_lock(record.key, MONTH):
            flush = asyncio.create_task(ledger.flush())
            killer = asyncio.create_task(killed_while_waiting(schema, 1000))
            saved = await asyncio.wait_for(flush, 10)
            killer.cancel()
        assert not saved
        assert ledger.failed_flushes == 1
        assert ledger.unsaved == (1200, 0)
        # Every pooled connection dies too (a server restart); the next calls reconnect.
        await asyncio.to_thread(terminate, schema)
        assert (await aio.usage(record.key, MONTH)).milli == 0
        await asyncio.to_thread(terminate, schema)
        assert account.take(300)
        assert await asyncio.wait_for(ledger.flush(), 10)
        assert ledger.unsaved == (0, 0)
        assert (await aio.usage(record.key, MONTH)).milli == 1500
    finally:
        await aio.aclose()
    terminate(schema)  # the blocking face's connections too
    store.add_usage({(MONTH, record.key): (1, 0)})
    assert store.usage(record.key, MONTH).milli == 1501


def test_the_url_names_the_schema_and_hides_the_password() -> None:
    store = open_store(f"{postgres_base()}?schema=cmcstream_test_url&connect_timeout=5")
    try:
        assert isinstance(store, PostgresKeyStore)
        assert store.schema == "cmcstream_test_url"
        assert store.count() == 0
    finally:
        store.close()
        drop_schema("cmcstream_test_url")
    from cmcstream.server.keystore_pg import _split_url

    conninfo, schema, shown = _split_url("postgresql://u:secret@db:5432/keys?sslmode=require")
    assert (conninfo, schema) == ("postgresql://u:secret@db:5432/keys?sslmode=require", "cmcstream")
    assert shown == "postgresql://u:***@db:5432/keys?sslmode=require"
    options = "options=-c%20search_path%3Dx"
    assert _split_url(f"postgresql://db/k?schema=s&{options}")[:2] == (
        f"postgresql://db/k?{options}",
        "s",
    )


def test_an_unreachable_server_is_a_clear_cli_error() -> None:
    url = "postgresql://127.0.0.1:1/test?connect_timeout=2"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["keys", "list", "--db", url])
    assert result.exit_code == 1
    assert "PostgreSQL at postgresql://127.0.0.1:1/test" in result.output
    assert "Traceback" not in result.output


# -- end to end ----------------------------------------------------------------------------------


async def test_a_gateway_on_postgres_bills_as_it_goes_and_sees_keys_disabled(
    pg: tuple[Backend, str],
) -> None:
    backend, _ = pg
    store = backend.store()
    cli = CliRunner()
    created = cli.invoke(main, ["keys", "create", "--db", backend.location, "--name", "gw"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    month = month_of(time.time_ns() // 1_000_000)
    async with running_server(store=store, speed=100, usage_flush_s=0.2, key_recheck_s=0.2) as node:
        async with dial(node.url, key) as ws:
            await welcomed(ws)
            subscribe = {"method": "subscribe", "channel": "market@crypto_latest_price"}
            ack = await request(ws, {"id": 1, **subscribe, "params": {"crypto_ids": [1]}})
            assert ack["type"] == "ack"
            assert (await recv_json(ws))["type"] == "data"
            for _ in range(100):  # written while the client is connected, within 5 s
                usage = await asyncio.to_thread(store.usage, key, month)
                if usage.messages:
                    break
                await asyncio.sleep(0.05)
            assert usage.milli > 0
            assert usage.messages > 0
            disabled = await asyncio.to_thread(
                cli.invoke, main, ["keys", "disable", key, "--db", backend.location]
            )
            assert disabled.exit_code == 0, disabled.output
            code, _ = await closed_with(ws)
            assert code == 4101


@pytest.mark.slow
def test_keys_created_by_the_cli_serve_clients_and_their_usage_lands_in_postgres(
    pg: tuple[Backend, str],
) -> None:
    backend, _ = pg
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CMCSTREAM_DB": backend.location}
    cli = [sys.executable, "-m", "cmcstream"]
    created = subprocess.run(
        [*cli, "keys", "create", "--plan", "professional", "--name", "e2e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    key = created.stdout.strip()
    serve = [*cli, "serve", "--port", "0", "--db", backend.location, "--universe-size", "600"]
    with subprocess.Popen(
        [*serve, "--speed", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = ""
            for line in proc.stdout:
                banner += line
                if line.startswith("Press Ctrl-C"):
                    break
            assert "key store: postgresql://" in banner, banner
            assert "1 keys in the store" in banner, banner  # no demo key: the store has one
            url = banner.split("listening on ", 1)[1].split()[0]
            with connect(url, additional_headers={HEADER: key}) as ws:
                assert json.loads(ws.recv(timeout=5))["type"] == "welcome"
                ws.send(
                    json.dumps(
                        {
                            "id": 1,
                            "method": "subscribe",
                            "channel": "market@crypto_latest_price",
                            "params": {"crypto_ids": [1, 1027]},
                        }
                    )
                )
                assert json.loads(ws.recv(timeout=5))["type"] == "ack"
                data = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
                assert {frame["type"] for frame in data} == {"data"}
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0
            assert proc.stderr is not None
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    store = backend.store()
    usage = store.usage(key, month_of(time.time_ns() // 1_000_000))
    assert usage.messages >= 3
    assert usage.milli > 0  # two subscriptions' credits
    shown = subprocess.run(
        [*cli, "keys", "show", key], capture_output=True, text=True, env=env, timeout=60
    )
    assert f"messages:      {usage.messages:,}" in shown.stdout, shown.stdout
    listed = CliRunner().invoke(main, ["keys", "list", "--db", backend.location])
    assert key in listed.output
    assert "professional" in listed.output
    deleted = CliRunner().invoke(main, ["keys", "delete", key, "--db", backend.location])
    assert deleted.exit_code == 0, deleted.output
    assert store.get(key) is None
