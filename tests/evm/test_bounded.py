"""The EVM source's kept history is bounded: old final events folded, the rebuild still exact."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cmcstream.engine.events import Swap, Transfer
from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.devchain import DevChain
from tests.evm.test_source import (
    chain_reserves,
    engine_of,
    engine_reserves,
    following,
    settled,
)
from tests.evm.test_v3 import chain_state, engine_state

DEPTH = 4


async def agrees_with_the_chain(events: list[Any], dex: DevChain) -> None:
    engine = engine_of(events)
    reserves = await chain_reserves(dex)
    assert engine_reserves(engine, reserves) == reserves
    state = await chain_state(dex)
    assert engine_state(engine, state) == state
    held: Counter[tuple[str, str]] = Counter()
    for ev in events:
        if isinstance(ev, Transfer):
            if ev.sender is not None:
                held[ev.token, ev.sender] -= ev.amount
            if ev.receiver is not None:
                held[ev.token, ev.receiver] += ev.amount
    for token in dex.tokens.values():
        for who in dex.traders:
            expected = await token.functions.balanceOf(who).call()
            assert held.get((token.address.lower(), who.lower()), 0) == expected


async def test_old_final_events_are_folded_and_the_rebuild_is_exact(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    # A second between blocks: with keep_ms=0, only the blocks kept for reorg checks stay.
    await w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
    for _ in range(30):
        await dex.act()
    async with following(anvil, from_block=0, reorg_depth=DEPTH, keep_ms=0) as source:
        source.backfill(0, {})
        for _ in range(30):
            await dex.act()
        await settled(source, w3)
        source.step(0, {})
        kept = list(source.history())[-source.kept :]
        assert {getattr(e, "block", source.tip) for e in kept} <= set(
            range(source.tip - DEPTH + 1, source.tip + 1)
        )
        assert source.kept < source.stats.events // 5, (source.kept, source.stats.events)
        await agrees_with_the_chain(list(source.history()), dex)

        # A reorg within the kept blocks still rewinds onto the folded state.
        snapshot = await w3.provider.make_request("evm_snapshot", [])
        for _ in range(2):
            await dex.swap_v3(dex.traders[0], "USDC", "WETH", fraction=0.01, pool="WETH/USDC")
        await settled(source, w3)
        doomed = {e.tx for e in source.step(0, {}) if isinstance(e, Swap)}
        await w3.provider.make_request("evm_revert", [snapshot["result"]])
        for _ in range(3):
            await dex.swap(dex.traders[1], "PEPE", "USDC", fraction=0.002, pair="PEPE/USDC")
        await settled(source, w3)
        assert source.take_rewind()
        events = list(source.history()) + list(source.step(0, {}))
        assert len(doomed) == 2
        assert not doomed & {e.tx for e in events if isinstance(e, Swap)}
        assert source.kept < source.stats.events // 5
    await agrees_with_the_chain(events, dex)


async def test_recent_events_are_kept_whole(anvil: Anvil, w3: Any, dex: DevChain) -> None:
    for _ in range(10):
        await dex.act()
    async with following(anvil, from_block=0, reorg_depth=DEPTH) as source:
        history = list(source.backfill(0, {}))
        source.step(0, {})
        # Nothing is older than the default eight days: nothing is folded.
        assert source.kept == len(history)
        assert list(source.history()) == history
