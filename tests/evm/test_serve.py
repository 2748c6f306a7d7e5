"""A server fed by a real chain: the on-chain channels over the socket, checked against it."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from typing import Any

from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.devchain import DevChain
from cmcstream.sources.evm.source import EvmSource
from cmcstream.testing import running_server
from tests.server.conftest import dial, recv_json, request, welcomed

USDC_CMC_ID = 3408


def evm_server(anvil: Anvil) -> Any:
    return running_server(dex=EvmSource(anvil.ws_url, 1, from_block=0))


def every_channel(token: str, pool: str, wallet: str) -> list[dict[str, Any]]:
    """A subscribe of each of the nine on-chain channels, on one token, pool and wallet."""
    base = {"platform_id": 1, "address": [token]}
    return [
        {"channel": "onchain@transaction", "params": base},
        {"channel": "onchain@token_agg_event", "params": base},
        {"channel": "onchain@liquidity_event", "params": base},
        {"channel": "onchain@kline", "params": {**base, "interval": "1s"}},
        {"channel": "onchain@unique_trader", "params": {**base, "interval": "1s"}},
        {"channel": "onchain@token_metric", "params": base},
        {"channel": "onchain@holders_metrics", "params": base},
        {"channel": "onchain@pool_metric", "params": {"platform_id": 1, "pool_address": pool}},
        {"channel": "onchain@holder_wallet_update",
         "params": {"platform_id": 1, "wallet_address": wallet}},
    ]  # fmt: skip


async def subscribe_every_channel(ws: Any, token: str, pool: str, wallet: str) -> set[str]:
    """After the welcome, subscribe to :func:`every_channel`; each is acked. The channels."""
    await welcomed(ws)
    requests = every_channel(token, pool, wallet)
    for i, req in enumerate(requests):
        ack = await request(ws, {"id": i, "method": "subscribe", **req})
        assert ack["type"] == "ack", ack
    return {req["channel"] for req in requests}


async def test_every_onchain_channel_follows_the_chain(
    anvil: Anvil, w3: Any, dex: DevChain
) -> None:
    for _ in range(10):
        await dex.act()  # history the server back-fills
    pepe = dex.tokens["PEPE"].address.lower()
    pair = dex.pairs["PEPE/USDC"]
    trader = dex.traders[0]
    async with evm_server(anvil) as node, dial(node.url, node.demo_key) as ws:
        channels = await subscribe_every_channel(ws, pepe, pair.address.lower(), trader.lower())
        receipts = []
        for i in range(5):
            sold, bought = ("USDC", "PEPE") if i % 2 == 0 else ("PEPE", "USDC")
            await dex.swap(trader, sold, bought, fraction=0.01, pair="PEPE/USDC")
            block = await w3.eth.get_block("latest")
            receipts.append(await w3.eth.get_transaction_receipt(block["transactions"][-1]))
        r_base, r_quote = await dex.reserves("PEPE/USDC")
        await dex._add(trader, "PEPE", "USDC", r_base // 100, r_quote // 100)
        usdc = node.feed._quote_price(USDC_CMC_ID)
        frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        deadline = time.monotonic() + 3.5  # a 1 s candle closes, metrics coalesce
        while time.monotonic() < deadline:
            try:
                frame = await recv_json(ws, wait=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            frames[frame["channel"]].append(frame["data"])
    missing = channels - set(frames)
    assert not missing, f"no pushes on {missing}"

    # One transaction push per swap, located where the chain has it.
    pushed = {(t["tx"], t["lgid"]): t for t in frames["onchain@transaction"]}
    swap_topic = "0x" + bytes(receipts[0]["logs"][-1]["topics"][0]).hex()
    expected = {}
    for receipt in receipts:
        log = next(
            lg for lg in receipt["logs"] if "0x" + bytes(lg["topics"][0]).hex() == swap_topic
        )
        expected["0x" + bytes(receipt["transactionHash"]).hex(), log["logIndex"]] = receipt
    assert set(pushed) == set(expected)
    for key, t in pushed.items():
        assert t["bh"] == expected[key]["blockNumber"]
        assert t["f"] == trader.lower()
        assert t["pa"] == pair.address.lower()
        assert t["ex"] is False

    # The last price pushed is the pool's price on chain, through USDC's market price.
    assert usdc is not None
    last = frames["onchain@token_agg_event"][-1]
    chain_price = (r_quote / 10**6) / (r_base / 10**18) * usdc
    assert math.isclose(last["p"], chain_price, rel_tol=1e-9), (last, chain_price)
    assert last["a"] == pepe

    # The liquidity add, in token units.
    (liq,) = frames["onchain@liquidity_event"]
    assert liq["tp"] == "add"
    assert liq["pa"] == pair.address.lower()
    assert liq["ma"] == trader.lower()

    # Candles hold the pushed trades' prices; the pool's volume is theirs.
    trades = frames["onchain@transaction"]
    prices = {t["t0pu"] if t["ba"] == t["t0a"] else t["t1pu"] for t in trades}
    assert any(k["vu"] > 0 and k["c"] in prices for k in frames["onchain@kline"])
    h24 = frames["onchain@pool_metric"][-1]["24h"]
    assert h24["bvu"] + h24["svu"] >= sum(t["vu"] for t in trades) * (1 - 1e-9)

    # The trader's PEPE balance as the chain has it.
    held = await dex.tokens["PEPE"].functions.balanceOf(trader).call()
    balances = [
        u
        for u in frames["onchain@holder_wallet_update"]
        if u["tp"] == "token_balance" and u["a"] == pepe
    ]
    assert balances
    assert math.isclose(balances[-1]["b"], held / 10**18, rel_tol=1e-12)


async def test_a_reorg_rebuilds_the_served_state(anvil: Anvil, w3: Any, dex: DevChain) -> None:
    async with evm_server(anvil) as node:
        source = node.feed.dex
        assert isinstance(source, EvmSource)
        snapshot = (await w3.provider.make_request("evm_snapshot", []))["result"]
        engine_before = node.feed.onchain.engine
        for _ in range(3):
            await dex.swap(dex.traders[0], "USDC", "PEPE", fraction=0.02, pair="PEPE/USDC")
        head = await w3.eth.block_number
        await _until(lambda: source.tip >= head)
        await w3.provider.make_request("evm_revert", [snapshot])
        for _ in range(4):
            await dex.swap(dex.traders[1], "PEPE", "USDC", fraction=0.001, pair="PEPE/USDC")
        await _until(
            lambda: node.feed.onchain.engine is not engine_before and source.stats.reorgs == 1
        )
        await asyncio.sleep(0.2)
        pool = node.feed.onchain.engine.pool(1, dex.pairs["PEPE/USDC"].address.lower())
        assert pool is not None
        r0, r1, _ = await dex.pairs["PEPE/USDC"].functions.getReserves().call()
        assert (pool.r0, pool.r1) == (r0, r1)


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
