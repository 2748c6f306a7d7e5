"""The usage ledger: accounts per key, months, and writes that fail and are retried."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from cmcstream.server.keystore import KeyStore, StoreWorker, month_of
from cmcstream.server.usage import UsageLedger

DEC = 1_796_083_200_000  # 2026-12-01T00:00Z
JAN = 1_798_761_600_000  # 2027-01-01T00:00Z


class FlakyWorker(StoreWorker):
    """A store whose writes fail while ``broken`` is set."""

    def __init__(self, store: KeyStore) -> None:
        super().__init__(store)
        self.broken = False

    async def add_usage(self, deltas: Mapping[tuple[str, str], tuple[int, int]]) -> None:
        if self.broken:
            raise OSError("database is locked")
        await super().add_usage(deltas)


@pytest.fixture
def store() -> KeyStore:
    return KeyStore(":memory:")


async def test_a_failed_write_keeps_its_totals_for_the_next(store: KeyStore) -> None:
    record = store.create(credits=10)
    worker = FlakyWorker(store)
    ledger = UsageLedger(worker)
    account = await ledger.account(record, DEC)
    assert account.take(2500)
    account.delivered(100)
    worker.broken = True
    assert not await ledger.flush()
    assert ledger.failed_flushes == 1
    assert ledger.unsaved == (2500, 100)
    assert account.take(500)  # usage goes on while the store is away
    worker.broken = False
    assert await ledger.flush()
    assert ledger.unsaved == (0, 0)
    usage = store.usage(record.key, month_of(DEC))
    assert (usage.milli, usage.messages) == (3000, 100)
    worker.close()


async def test_accounts_are_shared_read_once_and_start_again_each_month(store: KeyStore) -> None:
    record = store.create(credits=1)
    store.add_usage({(month_of(DEC), record.key): (400, 7)})
    worker = StoreWorker(store)
    ledger = UsageLedger(worker)
    first, second = await asyncio.gather(
        ledger.account(record, DEC), ledger.account(record, DEC + 1)
    )
    assert first is second
    assert (first.spent, first.messages, first.remaining) == (400, 7, 600)
    assert first.take(600)
    assert not first.take(1)
    ledger.roll(JAN)  # a new month starts at zero; December keeps its usage
    assert first.remaining == 1000
    assert first.take(100)
    assert await ledger.flush()
    assert store.usage(record.key, month_of(DEC)).milli == 1000
    assert store.usage(record.key, month_of(JAN)).milli == 100
    ledger.forget(record.key)
    again = await ledger.account(record, JAN)
    assert again is not first
    assert again.spent == 100
    worker.close()


async def test_unsaved_usage_of_a_forgotten_key_counts_when_it_returns(store: KeyStore) -> None:
    record = store.create(credits=1)
    worker = FlakyWorker(store)
    ledger = UsageLedger(worker)
    account = await ledger.account(record, DEC)
    assert account.take(300)
    worker.broken = True
    ledger.forget(record.key)
    assert not await ledger.flush()
    returning = await ledger.account(record, DEC)
    assert returning.spent == 300  # not 0: the unsaved 300 is on top of the store's figure
    worker.broken = False
    assert await ledger.flush()
    assert store.usage(record.key, month_of(DEC)).milli == 300
    worker.close()


def test_old_stores_are_converted_to_milli_credits(tmp_path: object) -> None:
    import sqlite3

    path = f"{tmp_path}/old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE keys (key TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', plan TEXT NOT NULL,
            status TEXT NOT NULL, credits REAL, created_ms INTEGER NOT NULL);
        CREATE TABLE usage (key TEXT NOT NULL, month TEXT NOT NULL,
            credits REAL NOT NULL DEFAULT 0, messages INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (key, month));
        INSERT INTO keys VALUES ('k', '', 'startup', 'active', 5.0, 0);
        INSERT INTO usage VALUES ('k', '2026-11', 4.999999999999999, 200);
        """
    )
    db.close()
    store = KeyStore(path)
    try:
        assert store.usage("k", "2026-11").milli == 5000
        assert store.usage("k", "2026-11").messages == 200
    finally:
        store.close()
    assert KeyStore(path).usage("k", "2026-11").credits == 5.0  # converted once, then kept
