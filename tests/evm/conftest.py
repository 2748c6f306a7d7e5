"""A real chain for the EVM source's tests: anvil with Uniswap V2 and three ERC-20s.

The chain tools come from ``npm ci --prefix chain``. Without them the tests
skip on a developer's machine and fail in CI, where they must run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cmcstream.sources.evm.anvil import Anvil, ChainToolsMissing, chain_dir


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: `npm ci --prefix chain`)")
    pytest.skip(reason)


@pytest.fixture
def chain_tools() -> Path:
    try:
        return chain_dir()
    except ChainToolsMissing as exc:
        _unavailable(str(exc))
        raise


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    try:
        node = Anvil()
    except ChainToolsMissing as exc:
        _unavailable(str(exc))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
async def w3(anvil: Anvil) -> AsyncIterator[Any]:
    from web3 import AsyncWeb3, WebSocketProvider

    async with AsyncWeb3(WebSocketProvider(anvil.ws_url)) as client:
        yield client


@pytest.fixture
async def dex(w3: Any) -> Any:
    """The deployed contracts, seeded with a few actions' worth of history."""
    from cmcstream.sources.evm.devchain import DevChain

    return await DevChain.deploy(w3, seed=7)
