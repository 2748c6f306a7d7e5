"""Two chains in one server: two anvils (chain ids 1 and 56) as platforms 1 and 14."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from web3 import AsyncWeb3, WebSocketProvider

from cmcstream.cli import main
from cmcstream.sources.evm.anvil import Anvil
from cmcstream.sources.evm.devchain import DevChain
from cmcstream.sources.evm.source import EvmSource
from cmcstream.sources.merged import MergedSource
from cmcstream.testing import running_server
from tests.evm.test_source import chain_reserves
from tests.evm.test_v3 import chain_state, engine_state
from tests.server.conftest import dial, recv_json, request, welcomed


@pytest.fixture
def bsc(anvil: Anvil) -> Iterator[Anvil]:
    """A second chain beside ``anvil``, with BSC's chain id."""
    node = Anvil(chain_id=56)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
async def bsc_dex(bsc: Anvil) -> AsyncIterator[DevChain]:
    async with AsyncWeb3(WebSocketProvider(bsc.ws_url)) as client:
        yield await DevChain.deploy(client, seed=8, platform_id=14)


async def test_two_chains_feed_one_engine_and_rewind_apart(
    anvil: Anvil, bsc: Anvil, w3: Any, dex: DevChain, bsc_dex: DevChain
) -> None:
    assert await bsc_dex.w3.eth.chain_id == 56
    merged = MergedSource(
        [EvmSource(anvil.ws_url, 1, from_block=0), EvmSource(bsc.ws_url, 14, from_block=0)]
    )
    chains = {1: dex, 14: bsc_dex}
    async with running_server(dex=merged) as node, dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        for pid, chain in chains.items():
            pepe = chain.tokens["PEPE"].address.lower()
            params = {"platform_id": pid, "address": [pepe]}
            ack = await request(
                ws,
                {
                    "id": pid,
                    "method": "subscribe",
                    "channel": "onchain@transaction",
                    "params": params,
                },
            )
            assert ack["type"] == "ack", ack
        snapshot = await bsc_dex.w3.provider.make_request("evm_snapshot", [])
        for chain in chains.values():
            await chain.swap(chain.traders[0], "USDC", "PEPE", fraction=0.01, pair="PEPE/USDC")
            await chain.swap_v3(chain.traders[0], "WETH", "PEPE", fraction=0.01, pool="PEPE/WETH")
        pushed: dict[int, set[str]] = {1: set(), 14: set()}
        deadline = time.monotonic() + 10
        while any(len(v) < 2 for v in pushed.values()):
            frame = await recv_json(ws, wait=max(deadline - time.monotonic(), 0.01))
            pushed[frame["data"]["pid"]].add(frame["data"]["tx"])
        for pid, chain in chains.items():
            for tx in pushed[pid]:
                assert (await chain.w3.eth.get_transaction(tx))["to"] is not None
        # BSC reorganizes; Ethereum stands. The engine is rebuilt from both.
        engine_before = node.feed.onchain.engine
        await bsc_dex.w3.provider.make_request("evm_revert", [snapshot["result"]])
        for _ in range(4):
            await bsc_dex.swap_v3(
                bsc_dex.traders[1], "PEPE", "WETH", fraction=0.002, pool="PEPE/WETH"
            )
        bsc_source = merged.sources[1]
        assert isinstance(bsc_source, EvmSource)
        while node.feed.onchain.engine is engine_before or bsc_source.stats.reorgs != 1:
            assert time.monotonic() < deadline + 10, "no rebuild"
            await asyncio.sleep(0.01)
        head = await bsc_dex.w3.eth.block_number
        while bsc_source.tip < head:
            assert time.monotonic() < deadline + 10
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        engine = node.feed.onchain.engine
        for pid, chain in chains.items():
            for address, reserves in (await chain_reserves(chain)).items():
                pool = engine.pool(pid, address)
                assert pool is not None
                assert (pool.r0, pool.r1) == reserves, (pid, address)
            state = await chain_state(chain)
            assert engine_state(engine, state, pid) == state


def test_serve_takes_one_rpc_per_platform() -> None:
    runner = CliRunner()
    twice = runner.invoke(
        main, ["serve", "--source", "evm", "--rpc", "1=ws://127.0.0.1:1", "--rpc", "ws://x:2"]
    )
    assert twice.exit_code == 2
    assert "two chains for platform 1" in twice.output
    http = runner.invoke(main, ["serve", "--source", "evm", "--rpc", "14=http://127.0.0.1:1"])
    assert http.exit_code == 2
    assert "a WebSocket URL" in http.output
