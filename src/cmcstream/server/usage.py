"""This month's credits and messages per key, kept in memory and written in batches.

Charging happens on the hot path (every subscription, every delivered push
counted per connection), so it only adds to numbers here; the node writes the
accumulated deltas to the key store every second and at shutdown.
"""

from __future__ import annotations

from cmcstream.server.keystore import KeyRecord, KeyStore, month_of

__all__ = ["UsageLedger"]


class UsageLedger:
    """Usage of the current month, per key."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._month = ""
        self._credits: dict[str, float] = {}
        self._messages: dict[str, int] = {}
        self._pending: dict[str, tuple[float, int]] = {}

    def _roll(self, now_ms: int) -> str:
        month = month_of(now_ms)
        if month != self._month:
            # A new month starts every key at zero; what was pending belongs
            # to the month it was earned in.
            self.flush()
            self._month = month
            self._credits.clear()
            self._messages.clear()
        return month

    def _load(self, key: str) -> None:
        if key not in self._credits:
            usage = self._store.usage(key, self._month)
            self._credits[key] = usage.credits
            self._messages[key] = usage.messages

    def spent(self, key: str, now_ms: int) -> tuple[float, int]:
        """Credits and messages of ``key`` this month."""
        self._roll(now_ms)
        self._load(key)
        return self._credits[key], self._messages[key]

    def exhausted(self, record: KeyRecord, now_ms: int) -> bool:
        return self.spent(record.key, now_ms)[0] >= record.monthly_credits

    def charge(self, key: str, now_ms: int, credits: float = 0.0, messages: int = 0) -> float:
        """Add usage to ``key`` and return its credits spent this month."""
        self._roll(now_ms)
        self._load(key)
        self._credits[key] += credits
        self._messages[key] += messages
        c, m = self._pending.get(key, (0.0, 0))
        self._pending[key] = (c + credits, m + messages)
        return self._credits[key]

    def forget(self, key: str) -> None:
        """Drop the cached figures of a key with no open connection."""
        if key not in self._pending:
            self._credits.pop(key, None)
            self._messages.pop(key, None)

    def flush(self) -> None:
        """Write the accumulated deltas to the store."""
        if self._pending and self._month:
            pending, self._pending = self._pending, {}
            self._store.add_usage(self._month, pending)
