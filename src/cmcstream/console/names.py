"""Symbols for the ids and addresses a stream talks about, for people to read.

Three sources, best first:

* the simulator's own universe and DEX world, when the server says (in
  ``GET /health``) that it is a cmcstream simulator and which seed it runs;
* what every server agrees on: the real CoinMarketCap ids of the market's top
  coins and the real contracts of the chains' reference tokens;
* what the stream itself says: swaps and liquidity events carry their tokens'
  symbols (``t0s``, ``t1s``).
"""

from __future__ import annotations

import urllib.request
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.universe import GENERATED_ID_BASE, Universe

__all__ = ["SymbolBook", "short_address", "simulator_of"]


def short_address(address: str) -> str:
    """``0x8ac7…580d``: enough to tell addresses apart at a glance."""
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"


def simulator_of(url: str, timeout: float = 2.0) -> tuple[int, int] | None:
    """The (seed, universe size) a cmcstream server at ``url`` simulates, from its
    ``/health``; ``None`` when it does not answer like one."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme)
    if scheme is None:
        return None
    health = urlunsplit((scheme, parts.netloc, "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            body: Any = msgspec.json.decode(response.read())
        simulator = body["simulator"]
        return int(simulator["seed"]), int(simulator["universe_size"])
    except (OSError, msgspec.DecodeError, ValueError, KeyError, TypeError):
        return None


class SymbolBook:
    """Names by id or address; learns from the pushes it is shown.

    Args:
        simulator: the (seed, universe size) of the simulator behind the
            stream, when known.
    """

    def __init__(self, simulator: tuple[int, int] | None = None) -> None:
        self._simulator = simulator
        self._tokens: dict[tuple[int, str], str] = {
            (t.chain, t.address): t.symbol for t in REFERENCE_TOKENS
        }
        self._market = {a.cid: a.symbol for a in Universe.real_assets()}
        self._pools: dict[tuple[int, str], str] = {}
        self._wallets: dict[tuple[int, str], str] = {}
        if simulator is not None:
            world = DexWorld.build(simulator[0])
            self._tokens.update({(t.chain, t.address): t.symbol for t in world.tokens})
            every_pool = [*world.pools, *(m.target for m in world.migrations)]
            for p in every_pool:
                pair = f"{self._tokens[(p.chain, p.token0)]}/{self._tokens[(p.chain, p.token1)]}"
                self._pools[(p.chain, p.address)] = pair
            self._wallets = {
                (w.chain, w.address): ",".join(w.tags) for w in world.wallets if w.tags
            }

    @cached_property
    def _generated(self) -> dict[int, str]:
        # Building a universe of thousands takes a moment: only when asked for one.
        if self._simulator is None:
            return {}
        seed, size = self._simulator
        return {a.cid: a.symbol for a in Universe.load(size, seed=seed) if a.generated}

    def market(self, cid: int) -> str | None:
        if cid >= GENERATED_ID_BASE:
            return self._generated.get(cid)
        return self._market.get(cid)

    def token(self, chain: int, address: str) -> str | None:
        return self._tokens.get((chain, address))

    def pool(self, chain: int, address: str) -> str | None:
        return self._pools.get((chain, address))

    def wallet_tags(self, chain: int, address: str) -> str | None:
        return self._wallets.get((chain, address))

    def learn(self, chain: int | None, data: dict[str, Any]) -> None:
        """Take the token symbols a swap or liquidity event carries."""
        if chain is None:
            return
        for address_key, symbol_key in (("t0a", "t0s"), ("t1a", "t1s")):
            address, symbol = data.get(address_key), data.get(symbol_key)
            if isinstance(address, str) and isinstance(symbol, str) and symbol:
                self._tokens.setdefault((chain, address), symbol)
        pool = data.get("pa")
        t0, t1 = data.get("t0s"), data.get("t1s")
        if isinstance(pool, str) and isinstance(t0, str) and isinstance(t1, str):
            self._pools.setdefault((chain, pool), f"{t0}/{t1}")
