"""Which key store a location names: a ``postgresql://`` URL, or a SQLite file.

Kept apart from the contract (``store.py``), which both stores import, so the
choice between them imports each store only when it is named.
"""

from __future__ import annotations

from pathlib import Path

from cmcstream.server.store import Store, StoreUnavailable

__all__ = ["is_postgres_url", "open_store"]


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path) -> Store:
    """The store at ``location``: a ``postgresql://`` URL, or a SQLite file (``:memory:``).

    Raises:
        StoreUnavailable: the database cannot be reached or set up.
    """
    if is_postgres_url(location):
        try:
            from cmcstream.server.keystore_pg import PostgresKeyStore
        except ImportError as exc:
            raise StoreUnavailable(
                f"PostgreSQL needs psycopg: pip install 'cmcstream[postgres]' ({exc})"
            ) from None
        return PostgresKeyStore(str(location))
    from cmcstream.server.keystore import KeyStore

    return KeyStore(location)
