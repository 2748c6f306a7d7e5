"""Uniswap V3 pools on a real chain: decoded, served, and rewound, checked against the chain."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from cmcstream.engine.events import LiquidityChanged, PoolCreated, Swap
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.sources.evm.abi import V3_FACTORY, V3_POOL
from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.decode import topic_of
from cmcstream.sources.evm.devchain import V3_FEE, DevChain
from tests.evm.test_serve import evm_server, subscribe_every_channel
from tests.evm.test_source import engine_of, following, settled
from tests.server.conftest import dial, recv_json

V3_SWAP = "0x" + topic_of(V3_POOL[1]).hex()


def test_v3_event_abis_are_the_published_ones(chain_tools: Path) -> None:
    root = chain_tools / "node_modules" / "@uniswap" / "v3-core" / "artifacts" / "contracts"
    for mine, artifact in (
        (V3_POOL, "UniswapV3Pool.sol/UniswapV3Pool.json"),
        (V3_FACTORY, "UniswapV3Factory.sol/UniswapV3Factory.json"),
    ):
        published = {e.get("name"): e for e in json.loads((root / artifact).read_text())["abi"]}
        for entry in mine:
            theirs = published[entry["name"]]
            assert [(i["type"], i.get("indexed")) for i in entry["inputs"]] == [
                (i["type"], i.get("indexed")) for i in theirs["inputs"]
            ], entry["name"]
            if entry["type"] == "function":
                assert [o["type"] for o in entry["outputs"]] == [
                    o["type"] for o in theirs["outputs"]
                ], entry["name"]


async def chain_state(dex: DevChain) -> dict[str, tuple[int, int, int]]:
    """Each V3 pool's ``(balance of token0, balance of token1, sqrtPriceX96)``."""
    out = {}
    for pool in dex.pools.values():
        t0 = await pool.functions.token0().call()
        t1 = await pool.functions.token1().call()
        held = []
        for token in (t0, t1):
            erc20 = next(c for c in dex.tokens.values() if c.address == token)
            held.append(await erc20.functions.balanceOf(pool.address).call())
        slot0 = await pool.functions.slot0().call()
        out[pool.address.lower()] = (held[0], held[1], slot0[0])
    return out


def engine_state(
    engine: OnchainEngine, pools: Any, chain: int = 1
) -> dict[str, tuple[int, int, int]]:
    out = {}
    for address in pools:
        pool = engine.pool(chain, address)
        assert pool is not None, address
        assert pool.sqrt is not None
        out[address] = (pool.r0, pool.r1, pool.sqrt)
    return out


async def test_v3_pools_add_up_to_the_chain(anvil: Anvil, w3: Any, dex: DevChain) -> None:
    for _ in range(30):
        await dex.act()
    async with following(anvil, from_block=0, page_blocks=11) as source:
        history = list(source.backfill(0, {}))
        created = {e.pool: e for e in history if isinstance(e, PoolCreated)}
        for pool in dex.pools.values():
            ev = created[pool.address.lower()]
            assert (ev.dex, ev.fee_bps) == ("uniswap-v3", V3_FEE // 100)
        trader = dex.traders[0]
        for i in range(4):
            sold, bought = ("WETH", "PEPE") if i % 2 else ("PEPE", "WETH")
            await dex.swap_v3(trader, sold, bought, fraction=0.01, pool="PEPE/WETH")
        base, quote = await dex.held("WETH/USDC")
        await dex.mint(trader, "WETH/USDC", base // 50, quote // 50)
        await dex.swap_v3(trader, "USDC", "WETH", fraction=0.02, pool="WETH/USDC")
        assert await dex.burn(trader, "WETH/USDC", 1.0)  # with the fees of the swap
        # A donation: tokens that reach the pool outside its events.
        pool_at = dex.pools["WETH/USDC"].address
        await dex._send(dex.tokens["USDC"].functions.transfer(pool_at, 1234 * 10**6), trader)
        await settled(source, w3)
        live = list(source.step(0, {}))
        events = history + live
    v3 = {p.address.lower() for p in dex.pools.values()}
    assert sum(isinstance(e, Swap) and e.pool in v3 for e in live) == 5
    kinds = [e.action for e in live if isinstance(e, LiquidityChanged) and e.pool in v3]
    # The mint, the burn, the fees collected, the donation.
    assert kinds == ["add", "remove", "remove", "add"]
    (donated,) = [e for e in live if isinstance(e, LiquidityChanged) and e.tx == ""]
    assert {donated.amount0, donated.amount1} == {1234 * 10**6, 0}
    state = await chain_state(dex)
    engine = engine_of(events)
    assert engine_state(engine, state) == state
    # The pool's price is slot0's; its value, what it holds at the engine's prices.
    pepe_weth = engine.pool(1, dex.pools["PEPE/WETH"].address.lower())
    assert pepe_weth is not None
    b0, b1, sqrt = state[pepe_weth.address]
    weth = engine.token(1, dex.tokens["WETH"].address.lower())
    assert weth is not None
    weth_usd = engine.usd(weth)
    assert weth_usd == 2500.0
    pepe_in_weth = (sqrt / 2**96) ** 2 * 10 ** (pepe_weth.t0.decimals - pepe_weth.t1.decimals)
    if pepe_weth.t0 is weth:
        pepe_in_weth = 1 / pepe_in_weth
    pepe = pepe_weth.t1 if pepe_weth.t0 is weth else pepe_weth.t0
    price = engine.pool_price(pepe_weth, pepe)
    assert price is not None
    assert math.isclose(price, pepe_in_weth * weth_usd, rel_tol=1e-12)
    pepe_usd = engine.usd(pepe)
    assert pepe_usd is not None
    usd = (pepe_usd, weth_usd) if pepe_weth.t0 is pepe else (weth_usd, pepe_usd)
    liquidity = engine.pool_liquidity(pepe_weth)
    assert liquidity is not None
    value = b0 / 10**pepe_weth.t0.decimals * usd[0] + b1 / 10**pepe_weth.t1.decimals * usd[1]
    assert math.isclose(liquidity, value, rel_tol=1e-12)


async def test_v3_pools_initialized_before_the_start_are_adopted(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    async with following(anvil) as source:  # from the head: no PoolCreated nor Initialize seen
        assert list(source.backfill(0, {})) == []
        for name in dex.pools:
            await dex.swap_v3(dex.traders[0], *name.split("/"), fraction=0.01, pool=name)
        for _ in range(20):
            await dex.act()
        await settled(source, w3)
        events = list(source.step(0, {}))
    state = await chain_state(dex)
    assert engine_state(engine_of(events), state) == state


async def test_every_onchain_channel_follows_a_v3_pool(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    pepe = dex.tokens["PEPE"].address.lower()
    pool = dex.pools["PEPE/WETH"]
    trader = dex.traders[1]
    async with evm_server(anvil) as node, dial(node.url, node.demo_key) as ws:
        channels = await subscribe_every_channel(ws, pepe, pool.address.lower(), trader.lower())
        receipts = []
        for i in range(4):
            sold, bought = ("WETH", "PEPE") if i % 2 == 0 else ("PEPE", "WETH")
            await dex.swap_v3(trader, sold, bought, fraction=0.01, pool="PEPE/WETH")
            block = await w3.eth.get_block("latest")
            receipts.append(await w3.eth.get_transaction_receipt(block["transactions"][-1]))
        held_pepe, held_weth = await dex.held("PEPE/WETH")
        await dex.mint(trader, "PEPE/WETH", held_pepe // 100, held_weth // 100)
        assert await dex.burn(trader, "PEPE/WETH", 0.5)
        state = await chain_state(dex)
        frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        deadline = time.monotonic() + 3.5  # a 1 s candle closes, metrics coalesce
        while time.monotonic() < deadline:
            try:
                frame = await recv_json(ws, wait=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            frames[frame["channel"]].append(frame["data"])
        served = engine_state(node.feed.onchain.engine, state)
    missing = channels - set(frames)
    assert not missing, f"no pushes on {missing}"
    assert served == state

    # One transaction push per swap, located where the chain has it.
    pushed = {(t["tx"], t["lgid"]): t for t in frames["onchain@transaction"]}
    expected = {}
    for receipt in receipts:
        (log,) = [lg for lg in receipt["logs"] if "0x" + bytes(lg["topics"][0]).hex() == V3_SWAP]
        expected["0x" + bytes(receipt["transactionHash"]).hex(), log["logIndex"]] = receipt
    assert set(pushed) == set(expected)
    for key, t in pushed.items():
        assert t["bh"] == expected[key]["blockNumber"]
        assert t["f"] == t["ma"] == trader.lower()
        assert t["pa"] == pool.address.lower()

    # The last price pushed is slot0's, through WETH's market price at that swap.
    last_trade = frames["onchain@transaction"][-1]
    weth_usd = last_trade["t1pu"] if last_trade["ba"] == last_trade["t0a"] else last_trade["t0pu"]
    *_, sqrt = state[pool.address.lower()]
    token0 = (await pool.functions.token0().call()).lower()
    raw = (sqrt / 2**96) ** 2  # token0 in token1, raw units; both have 18 decimals
    pepe_in_weth = raw if token0 == pepe else 1 / raw
    last = frames["onchain@token_agg_event"][-1]
    assert last["a"] == pepe
    assert math.isclose(last["p"], pepe_in_weth * weth_usd, rel_tol=1e-9), last

    # The mint and the burn, in token units.
    liquidity = [e for e in frames["onchain@liquidity_event"] if e["pa"] == pool.address.lower()]
    assert [e["tp"] for e in liquidity][:2] == ["add", "remove"]
    assert all(e["ma"] == trader.lower() for e in liquidity)

    # The pool's volume is its swaps'.
    h24 = frames["onchain@pool_metric"][-1]["24h"]
    trades = frames["onchain@transaction"]
    assert h24["bvu"] + h24["svu"] >= sum(t["vu"] for t in trades) * (1 - 1e-9)
    assert any(k["vu"] > 0 for k in frames["onchain@kline"])

    # The trader's PEPE balance as the chain has it.
    held = await dex.tokens["PEPE"].functions.balanceOf(trader).call()
    balances = [
        u
        for u in frames["onchain@holder_wallet_update"]
        if u["tp"] == "token_balance" and u["a"] == pepe
    ]
    assert balances
    assert math.isclose(balances[-1]["b"], held / 10**18, rel_tol=1e-12)


async def test_a_reorg_of_v3_swaps_and_burns_is_rewound(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    trader = dex.traders[2]
    base, quote = await dex.held("WETH/USDC")
    await dex.mint(trader, "WETH/USDC", base // 20, quote // 20)
    async with following(anvil, from_block=0) as source:
        source.backfill(0, {})
        snapshot = await w3.provider.make_request("evm_snapshot", [])
        for _ in range(2):
            await dex.swap_v3(trader, "USDC", "WETH", fraction=0.01, pool="WETH/USDC")
        await w3.provider.make_request("evm_mine", [])
        # Burned and not collected: owed, out of the engine's reserves.
        npm = dex.positions
        token_id = await npm.functions.tokenOfOwnerByIndex(trader, 0).call()
        liquidity = (await npm.functions.positions(token_id).call())[7]
        await dex._send(
            npm.functions.decreaseLiquidity((token_id, liquidity // 2, 0, 0, 2**40)), trader
        )
        await settled(source, w3)
        doomed = {e.tx for e in source.step(0, {}) if isinstance(e, (Swap, LiquidityChanged))}
        assert len(doomed) == 3
        await w3.provider.make_request("evm_revert", [snapshot["result"]])
        for _ in range(6):
            await dex.swap_v3(trader, "WETH", "USDC", fraction=0.001, pool="WETH/USDC")
        assert await dex.burn(trader, "WETH/USDC", 1.0)
        await settled(source, w3)
        assert source.take_rewind()
        events = list(source.history()) + list(source.step(0, {}))
    assert not doomed & {e.tx for e in events if isinstance(e, (Swap, LiquidityChanged))}
    state = await chain_state(dex)
    assert engine_state(engine_of(events), state) == state
