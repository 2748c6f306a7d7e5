"""What the playground offers to pick: the market's assets and the DEX world's
platforms, tokens, pools and wallets.

The simulators are deterministic from the seed and the universe size, so a
gateway without the feed in its process builds the same choices itself. With
a chain as the on-chain source, the choices are what the feed's engine has
seen listed so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import msgspec

from cmcstream.config import ServerConfig
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.protocol.platforms import PlatformTable
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.universe import Universe

__all__ = [
    "AssetChoice",
    "Choices",
    "LazyChoices",
    "PlatformChoice",
    "PoolChoice",
    "TokenChoice",
    "WalletChoice",
    "engine_choices",
    "market_choices",
    "simulated_choices",
    "world_choices",
]

# Enough wallets per chain to try the holder channels; the tagged ones come first.
WALLETS_PER_PLATFORM = 40


class AssetChoice(msgspec.Struct, frozen=True):
    id: int
    symbol: str
    name: str
    rank: int


class PlatformChoice(msgspec.Struct, frozen=True):
    id: int
    name: str
    holders: bool  # whether the holder channels cover it


class TokenChoice(msgspec.Struct, frozen=True):
    platform_id: int
    address: str
    symbol: str
    name: str


class PoolChoice(msgspec.Struct, frozen=True):
    platform_id: int
    address: str
    dex: str
    pair: str  # "BASE/QUOTE" symbols


class WalletChoice(msgspec.Struct, frozen=True):
    platform_id: int
    address: str
    tags: tuple[str, ...]


class Choices(msgspec.Struct, frozen=True):
    assets: tuple[AssetChoice, ...]
    platforms: tuple[PlatformChoice, ...]
    tokens: tuple[TokenChoice, ...]
    pools: tuple[PoolChoice, ...]
    wallets: tuple[WalletChoice, ...]


def market_choices(universe: Universe) -> tuple[AssetChoice, ...]:
    """Every asset of the market, by rank."""
    return tuple(AssetChoice(a.cid, a.symbol, a.name, a.rank) for a in universe)


def _platforms(ids: Iterable[int]) -> tuple[PlatformChoice, ...]:
    table = PlatformTable()
    found = (table.get(pid) for pid in dict.fromkeys(ids))
    return tuple(PlatformChoice(p.id, p.name, p.holders) for p in found if p is not None)


def world_choices(universe: Universe, world: DexWorld) -> Choices:
    """The market's assets and everything on the simulated chains."""
    symbols = {(t.chain, t.address): t.symbol for t in world.tokens}
    pools = [*world.pools, *(m.target for m in world.migrations)]
    # The busiest first on each chain: what a newcomer picks shows pushes at once.
    activity: dict[tuple[int, str], float] = {}
    for p in pools:
        for token in (p.token0, p.token1):
            activity[p.chain, token] = activity.get((p.chain, token), 0.0) + p.activity
    order = {chain: i for i, chain in enumerate(world.chains)}
    tokens = sorted(
        world.tokens, key=lambda t: (order[t.chain], -activity.get((t.chain, t.address), 0.0))
    )
    wallets: list[WalletChoice] = []
    for chain in world.chains:
        on_chain = sorted(world.wallets_on(chain), key=lambda w: not w.tags)
        wallets.extend(
            WalletChoice(w.chain, w.address, w.tags) for w in on_chain[:WALLETS_PER_PLATFORM]
        )
    return Choices(
        assets=market_choices(universe),
        platforms=_platforms(world.chains),
        tokens=tuple(TokenChoice(t.chain, t.address, t.symbol, t.name) for t in tokens),
        pools=tuple(
            PoolChoice(
                p.chain,
                p.address,
                p.dex,
                f"{symbols.get((p.chain, p.token0), '?')}/{symbols.get((p.chain, p.token1), '?')}",
            )
            for p in pools
        ),
        wallets=tuple(wallets),
    )


def engine_choices(assets: tuple[AssetChoice, ...], engine: OnchainEngine) -> Choices:
    """The market's assets and the tokens and pools the on-chain engine has seen listed.

    A chain names no wallets up front, so none are offered.
    """
    tokens = engine.listed_tokens()
    pools = engine.listed_pools()
    return Choices(
        assets=assets,
        platforms=_platforms(chain for chain, _, _ in tokens),
        tokens=tuple(TokenChoice(chain, addr, symbol, symbol) for chain, addr, symbol in tokens),
        pools=tuple(PoolChoice(chain, address, dex, pair) for chain, address, dex, pair in pools),
        wallets=(),
    )


def simulated_choices(config: ServerConfig) -> Choices:
    """The choices of the simulators ``config`` describes, built from scratch."""
    return world_choices(
        Universe.load(config.universe_size, seed=config.seed), DexWorld.build(config.seed)
    )


class LazyChoices:
    """:func:`simulated_choices`, built once off the event loop on first use.

    For a gateway without the feed in its process: start-up stays as quick as
    before, and the first visitor waits a fraction of a second.
    """

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._built: asyncio.Future[Choices] | None = None

    async def __call__(self) -> Choices:
        if self._built is None:
            self._built = asyncio.ensure_future(asyncio.to_thread(simulated_choices, self._config))
        return await asyncio.shield(self._built)
