"""The EVM source on a real chain: back-fill, live blocks, adopted pairs, reorgs."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cmcstream.engine.events import (
    LiquidityChanged,
    NativeBalanceChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
)
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.sources.evm.abi import V2_FACTORY, V2_PAIR
from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.devchain import DevChain
from cmcstream.sources.evm.source import EvmSource


@asynccontextmanager
async def following(anvil: Anvil, **kwargs: Any) -> AsyncIterator[EvmSource]:
    source = EvmSource(anvil.ws_url, 1, **kwargs)
    await source.start()
    try:
        yield source
    finally:
        await source.aclose()


async def settled(source: EvmSource, w3: Any) -> None:
    """Wait (up to 10 s) until the source has read the chain's head."""
    head = await w3.eth.block_number
    deadline = time.monotonic() + 10.0
    while source.tip < head - source.confirmations:
        assert time.monotonic() < deadline, f"source at {source.tip}, head {head}"
        await asyncio.sleep(0.01)


async def chain_reserves(dex: DevChain) -> dict[str, tuple[int, int]]:
    out = {}
    for pair in dex.pairs.values():
        r0, r1, _ = await pair.functions.getReserves().call()
        out[pair.address.lower()] = (r0, r1)
    return out


def engine_of(events: Any) -> OnchainEngine:
    engine = OnchainEngine(lambda cid: 1.0 if cid == 3408 else 2500.0)
    engine.apply_many(events)
    return engine


def engine_reserves(engine: OnchainEngine, pools: Any) -> dict[str, tuple[int, int]]:
    out = {}
    for address in pools:
        pool = engine.pool(1, address)
        assert pool is not None, address
        out[address] = (pool.r0, pool.r1)
    return out


def test_event_abis_are_the_published_ones(chain_tools: Path) -> None:
    root = chain_tools / "node_modules" / "@uniswap" / "v2-core" / "build"
    for mine, artifact in ((V2_PAIR, "UniswapV2Pair.json"), (V2_FACTORY, "UniswapV2Factory.json")):
        published = {e.get("name"): e for e in json.loads((root / artifact).read_text())["abi"]}
        for entry in mine:
            theirs = published[entry["name"]]
            assert [(i["type"], i.get("indexed")) for i in entry["inputs"]] == [
                (i["type"], i.get("indexed")) for i in theirs["inputs"]
            ], entry["name"]


async def test_backfill_then_live_blocks_add_up_to_the_chain(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    for _ in range(25):
        await dex.act()
    async with following(anvil, from_block=0, page_blocks=7) as source:
        history = list(source.backfill(0, {}))
        kinds = {type(e) for e in history}
        assert {TokenListed, PoolCreated, Swap, LiquidityChanged, Transfer} <= kinds
        listed = {e.symbol: e for e in history if isinstance(e, TokenListed)}
        assert set(listed) == {"USDC", "PEPE", "SHIB", "WETH"}
        assert listed["USDC"].address == "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"  # mainnet
        assert listed["USDC"].decimals == 6
        # The creator, where the chain knows it: PEPE was deployed, USDC put in place.
        assert listed["PEPE"].creator == dex.deployer.lower()
        assert listed["USDC"].creator is None
        for _ in range(25):
            await dex.act()
        await settled(source, w3)
        live = list(source.step(0, {}))
        assert any(isinstance(e, Swap) for e in live)
        assert source.stats.heads > 0
        events = history + live
    reserves = await chain_reserves(dex)
    engine = engine_of(events)
    assert engine_reserves(engine, reserves) == reserves
    # Swaps carry the transaction's sender and their block's time.
    receipt_from = {}
    for ev in events:
        if isinstance(ev, Swap):
            tx = await w3.eth.get_transaction(ev.tx)
            receipt_from[ev.tx] = (tx["from"].lower(), ev.sender)
            block = await w3.eth.get_block(ev.block)
            assert ev.ts == block["timestamp"] * 1000
    assert all(a == b for a, b in receipt_from.values())
    # Holders: every trader's token balance is what the transfers add up to.
    balances: Counter[tuple[str, str]] = Counter()
    for ev in events:
        if isinstance(ev, Transfer):
            if ev.sender is not None:
                balances[ev.token, ev.sender] -= ev.amount
            if ev.receiver is not None:
                balances[ev.token, ev.receiver] += ev.amount
    for token in dex.tokens.values():
        for who in dex.traders:
            held = await token.functions.balanceOf(who).call()
            assert balances.get((token.address.lower(), who.lower()), 0) == held
    # A native balance is read after each block in which the wallet traded.
    natives = [e for e in events if isinstance(e, NativeBalanceChanged)]
    assert {e.wallet for e in natives} == {t.lower() for t in [dex.deployer, *dex.traders]}
    for e in natives:
        assert e.balance == await w3.eth.get_balance(w3.to_checksum_address(e.wallet), e.block)


async def test_pairs_created_before_the_start_are_adopted_with_their_reserves(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    for _ in range(10):
        await dex.act()
    async with following(anvil) as source:  # from the head: no PairCreated seen
        assert list(source.backfill(0, {})) == []
        for _ in range(30):
            await dex.act()
        await settled(source, w3)
        events = list(source.step(0, {}))
    reserves = await chain_reserves(dex)
    created = {e.pool for e in events if isinstance(e, PoolCreated)}
    assert created == set(reserves) | {p.address.lower() for p in dex.pools.values()}
    assert engine_reserves(engine_of(events), reserves) == reserves


async def test_a_reorg_rewinds_the_events_of_the_blocks_it_replaced(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    async with following(anvil, from_block=0) as source:
        source.backfill(0, {})
        snapshot = await w3.provider.make_request("evm_snapshot", [])
        fork_at = await w3.eth.block_number
        for _ in range(3):
            await dex.swap(dex.traders[0], "USDC", "PEPE", fraction=0.01, pair="PEPE/USDC")
        await settled(source, w3)
        doomed = {e.tx for e in source.step(0, {}) if isinstance(e, Swap)}
        assert len(doomed) == 3
        assert not source.take_rewind()
        await w3.provider.make_request("evm_revert", [snapshot["result"]])
        assert await w3.eth.block_number == fork_at
        # The other chain: different swaps, one block longer, so a new head arrives.
        for _ in range(4):
            await dex.swap(dex.traders[1], "PEPE", "USDC", fraction=0.002, pair="PEPE/USDC")
        await settled(source, w3)
        assert source.take_rewind()
        assert source.stats.reorgs == 1
        replay = list(source.history())
        fresh = list(source.step(0, {}))
        assert not doomed & {e.tx for e in replay + fresh if isinstance(e, Swap)}
        assert sum(isinstance(e, Swap) for e in fresh) == 4
        events = replay + fresh
    reserves = await chain_reserves(dex)
    assert engine_reserves(engine_of(events), reserves) == reserves


async def test_anvil_reorg_at_the_same_height_is_seen(anvil: Anvil, w3: Any, dex: DevChain) -> None:
    async with following(anvil, from_block=0) as source:
        source.backfill(0, {})
        for _ in range(3):
            await dex.swap(dex.traders[0], "USDC", "PEPE", fraction=0.01, pair="PEPE/USDC")
        await settled(source, w3)
        before = {e.tx for e in source.step(0, {}) if isinstance(e, Swap)}
        # Replace the last two blocks by empty ones: their swaps are gone.
        await w3.provider.make_request("anvil_reorg", [2, []])
        deadline = time.monotonic() + 10
        while not source.stats.reorgs:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert source.take_rewind()
        kept = {e.tx for e in source.history() if isinstance(e, Swap)}
        assert len(before - kept) == 2
    reserves = await chain_reserves(dex)
    assert engine_reserves(engine_of(list(source.history())), reserves) == reserves
