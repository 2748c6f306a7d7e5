"""This month's usage per key: accounts kept in memory, written to the store in batches.

Charging happens on the hot path (every subscription; in per-message billing
every push), so it only changes numbers in an :class:`Account`; the node
writes the accumulated deltas to the key store every second and at shutdown.
A write that fails (a locked file, a full disk) keeps its deltas and they go
out with the next one: usage is never dropped, only delayed. What a process
killed outright loses is what it had not written yet, at most one flush
period of usage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cmcstream.protocol.billing import Account
from cmcstream.server.store import AsyncStore, KeyRecord, month_of

__all__ = ["PushCharge", "UsageLedger"]

logger = logging.getLogger(__name__)

_Deltas = dict[tuple[str, str], tuple[int, int]]  # (month, key) -> (milli, messages)


class UsageLedger:
    """The :class:`Account` of every key with an open connection, this month."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._month = ""
        self._accounts: dict[str, Account] = {}
        self._pending: _Deltas = {}
        self._flushing = asyncio.Lock()
        self.failed_flushes = 0
        self.charged_milli = 0  # by this process since it started, as harvested

    async def account(self, record: KeyRecord, now_ms: int) -> Account:
        """The account of ``record``'s key this month, read from the store on first use."""
        self.roll(now_ms)
        account = self._accounts.get(record.key)
        if account is None:
            month = self._month
            usage = await self._store.usage(record.key, month)
            account = self._accounts.get(record.key)  # another connect may have won the race
            if account is None:
                account = self._accounts[record.key] = Account(record.monthly_milli)
                # What is written but not yet in the store belongs on top.
                unsaved, messages = self._pending.get((month, record.key), (0, 0))
                account.restart(usage.milli + unsaved, usage.messages + messages)
        account.limit = record.monthly_milli
        return account

    def roll(self, now_ms: int) -> None:
        """Start a new month at zero when ``now_ms`` is in one; usage stays with its month."""
        month = month_of(now_ms)
        if month == self._month:
            return
        self._harvest()
        self._month = month
        for account in self._accounts.values():
            account.restart()

    def forget(self, key: str) -> None:
        """Drop the account of a key with no open connection (its usage is kept)."""
        account = self._accounts.pop(key, None)
        if account is not None:
            self._harvest_one(key, account)

    def _harvest(self) -> None:
        for key, account in self._accounts.items():
            self._harvest_one(key, account)

    def _harvest_one(self, key: str, account: Account) -> None:
        milli, messages = account.harvest()
        self.charged_milli += milli
        if milli or messages:
            slot = (self._month, key)
            old_milli, old_messages = self._pending.get(slot, (0, 0))
            self._pending[slot] = (old_milli + milli, old_messages + messages)

    @property
    def charged(self) -> int:
        """Milli-credits charged by this process since it started, saved or not."""
        return self.charged_milli + sum(a.unsaved_milli for a in self._accounts.values())

    @property
    def unsaved(self) -> tuple[int, int]:
        """Milli-credits and messages not in the store yet."""
        milli = sum(c for c, _ in self._pending.values())
        messages = sum(m for _, m in self._pending.values())
        for account in self._accounts.values():
            milli += account.unsaved_milli
            messages += account.unsaved_messages
        return milli, messages

    async def flush(self) -> bool:
        """Write everything accumulated to the store; False (deltas kept) if that failed."""
        async with self._flushing:
            self._harvest()
            batch = dict(self._pending)
            if not batch:
                return True
            try:
                await self._store.add_usage(batch)
            except Exception as exc:
                self.failed_flushes += 1
                logger.warning(
                    "usage not saved yet (%s); %d key-month(s) kept for the next try",
                    exc,
                    len(batch),
                )
                return False
            for slot, (milli, messages) in batch.items():
                left_milli, left_messages = self._pending[slot]
                left = (left_milli - milli, left_messages - messages)
                if left == (0, 0):
                    del self._pending[slot]
                else:
                    self._pending[slot] = left
            return True


class PushCharge:
    """Per-message billing of one key: each push is taken from its account as it is queued.

    Shared by the key's connections (a :class:`~cmcstream.server.writer.PushMeter`).
    The first push the account cannot pay for calls ``on_exhausted`` once; it
    and every later one is not queued.
    """

    __slots__ = ("_account", "_on_exhausted", "_rate", "exhausted")

    def __init__(self, account: Account, rate: int, on_exhausted: Callable[[], None]) -> None:
        self._account = account
        self._rate = rate
        self._on_exhausted = on_exhausted
        self.exhausted = False

    def take(self) -> bool:
        if self._account.take(self._rate):
            return True
        if not self.exhausted:
            self.exhausted = True
            self._on_exhausted()
        return False

    def refund(self, pushes: int) -> None:
        self._account.give(self._rate * pushes)
