"""The platforms (chains) the on-chain channels accept, as data.

PROTOCOL.md §6.1 and §8. CoinMarketCap publishes the authoritative list at
the DEX REST endpoint ``/v1/dex/platform/list``; only ``14`` (BSC) and ``16``
(Solana) are documented for the WebSocket, and ``1`` (Ethereum) is reported by
third parties. The other ids in :data:`DEFAULT_PLATFORMS` are this project's
defaults, kept here so a deployment can replace the table with the official
one without touching code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PLATFORMS", "AddressKind", "Platform", "PlatformTable"]


class AddressKind(enum.StrEnum):
    """How a platform spells addresses, which decides validation and case rules."""

    EVM = "evm"  # 0x + 40 hex digits, compared lower-cased
    SOLANA = "solana"  # base58, 32–44 characters, case-sensitive
    TRON = "tron"  # base58 starting with T, 34 characters, case-sensitive
    OTHER = "other"  # any printable token without spaces, case preserved


@dataclass(frozen=True, slots=True)
class Platform:
    """One chain.

    Attributes:
        id: the CoinMarketCap platform id (``platform_id`` / ``pid``).
        name: display name.
        kind: the address family.
        holders: whether the two holder channels cover it (§8 chain coverage).
    """

    id: int
    name: str
    kind: AddressKind
    holders: bool


DEFAULT_PLATFORMS: tuple[Platform, ...] = (
    Platform(1, "Ethereum", AddressKind.EVM, True),
    Platform(14, "BSC", AddressKind.EVM, True),
    Platform(16, "Solana", AddressKind.SOLANA, True),
    Platform(199, "Base", AddressKind.EVM, True),
    Platform(20, "Polygon", AddressKind.EVM, True),
    Platform(51, "Arbitrum", AddressKind.EVM, True),
    Platform(42, "Optimism", AddressKind.EVM, True),
    Platform(28, "Avalanche", AddressKind.EVM, True),
    Platform(1958, "Tron", AddressKind.TRON, True),
    # Chains the seven market-data channels cover but the holder channels do not.
    Platform(20947, "Sui", AddressKind.OTHER, False),
    Platform(11419, "TON", AddressKind.OTHER, False),
)


class PlatformTable:
    """Lookup of platforms by id."""

    def __init__(self, platforms: Iterable[Platform] = DEFAULT_PLATFORMS) -> None:
        self._by_id: Mapping[int, Platform] = {p.id: p for p in platforms}

    def get(self, platform_id: int) -> Platform | None:
        return self._by_id.get(platform_id)

    def __iter__(self) -> Iterator[Platform]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
