"""Old, final events folded into the state they leave: the bound on a chain's kept history.

The feed rebuilds its on-chain engine from a source's history after a reorg.
Kept whole, that history grows with the chain. Events that are both final
(below the blocks kept for reorg checks, so no reorg the source survives can
take them back) and older than every window the engine reads (``keep_ms``)
are folded instead: what they add up to is restated by as few events as
restate it: each token's listing, each pool's creation (a V3 pool's with its
latest price), one liquidity add of each pool's reserves, one mint (or burn)
of each holder's net balance of each token, each wallet's last native
balance. Swaps that old are in no window, so they leave nothing else.

Rebuilt from the restatement and the recent events, the engine has the same
reserves, prices of pools and balances as if it had read everything; what a
rebuild does not restore is what only the folded swaps knew beyond the
windows (a holder's cost basis from trades older than ``keep_ms``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from cmcstream.engine.events import (
    DexEvent,
    LiquidityChanged,
    NativeBalanceChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
)

__all__ = ["Folded"]

_ZERO = "0x" + "00" * 20


@dataclass(slots=True)
class Folded:
    """The state that folded events leave, on one chain."""

    chain: int
    listed: dict[str, TokenListed] = field(default_factory=dict)
    pools: dict[str, PoolCreated] = field(default_factory=dict)
    reserves: dict[str, list[int]] = field(default_factory=dict)  # pool -> [r0, r1]
    holdings: dict[tuple[str, str], int] = field(default_factory=dict)  # (token, holder) -> raw
    natives: dict[str, NativeBalanceChanged] = field(default_factory=dict)
    ts: int = 0  # the time of the newest folded event
    count: int = 0  # events folded so far

    def fold(self, events: Iterable[DexEvent]) -> None:
        for ev in events:
            self.count += 1
            if isinstance(ev, TokenListed):
                self.listed[ev.address] = ev
            elif isinstance(ev, PoolCreated):
                self.pools[ev.pool] = ev
                self.reserves[ev.pool] = [0, 0]
            elif isinstance(ev, Swap):
                self._swap(ev)
            elif isinstance(ev, LiquidityChanged):
                sign = -1 if ev.action == "remove" else 1
                reserves = self.reserves.get(ev.pool)
                if reserves is not None:
                    reserves[0] += sign * ev.amount0
                    reserves[1] += sign * ev.amount1
            elif isinstance(ev, Transfer):
                if ev.sender is not None:
                    key = (ev.token, ev.sender)
                    self.holdings[key] = self.holdings.get(key, 0) - ev.amount
                if ev.receiver is not None:
                    key = (ev.token, ev.receiver)
                    self.holdings[key] = self.holdings.get(key, 0) + ev.amount
            elif isinstance(ev, NativeBalanceChanged):
                self.natives[ev.wallet] = ev
            self.ts = max(self.ts, getattr(ev, "ts", 0))

    def _swap(self, ev: Swap) -> None:
        created = self.pools.get(ev.pool)
        reserves = self.reserves.get(ev.pool)
        if created is None or reserves is None:
            return
        side = 0 if ev.token_in == created.token0 else 1
        reserves[side] += ev.amount_in
        reserves[1 - side] -= ev.amount_out
        if ev.sqrt_price_x96 is not None:
            self.pools[ev.pool] = msgspec.structs.replace(created, sqrt_price_x96=ev.sqrt_price_x96)

    def reserve(self, pool: str) -> tuple[int, int]:
        r0, r1 = self.reserves.get(pool, (0, 0))
        return r0, r1

    def events(self) -> list[DexEvent]:
        """The folded state, restated."""
        out: list[DexEvent] = [*self.listed.values(), *self.pools.values()]
        chain, ts = self.chain, self.ts
        for pool, created in self.pools.items():
            r0, r1 = self.reserves[pool]
            if r0 or r1:
                out.append(
                    LiquidityChanged(
                        chain, created.block, ts, "", pool, "add", _ZERO, _ZERO, r0, r1
                    )
                )
        for (token, holder), amount in self.holdings.items():
            if amount > 0:
                out.append(Transfer(chain, 0, ts, "", token, None, holder, amount))
            elif amount < 0:  # held before the first block read: sent, never seen arriving
                out.append(Transfer(chain, 0, ts, "", token, holder, None, -amount))
        out += self.natives.values()
        return out
