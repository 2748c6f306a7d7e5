"""The contract interfaces the EVM source reads: events it decodes, views it calls.

Only the parts it uses, as standard JSON ABI entries: the Uniswap V2 factory
and pair events and views, the Uniswap V3 factory and pool events and views,
and the ERC-20 ``Transfer`` event and metadata views. They are the same
entries as in the contracts' published build artifacts (a test compares them
with ``@uniswap/v2-core``'s and ``@uniswap/v3-core``'s). Decoding goes
through web3's contract events, never by hand.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ERC20", "ERC20_BYTES32", "V2_FACTORY", "V2_PAIR", "V3_FACTORY", "V3_POOL"]


def _event(name: str, *inputs: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "anonymous": False,
        "name": name,
        "type": "event",
        "inputs": [{"indexed": ix, "name": n, "type": t} for t, n, ix in inputs],
    }


def _view(name: str, out: str, *inputs: tuple[str, str]) -> dict[str, Any]:
    return {
        "constant": True,
        "name": name,
        "type": "function",
        "stateMutability": "view",
        "payable": False,
        "inputs": [{"name": n, "type": t} for t, n in inputs],
        "outputs": [{"name": "", "type": t} for t in out.split(",")] if out else [],
    }


_TRANSFER: Final = _event(
    "Transfer", ("address", "from", True), ("address", "to", True), ("uint256", "value", False)
)

V2_FACTORY: Final[list[dict[str, Any]]] = [
    _event(
        "PairCreated",
        ("address", "token0", True),
        ("address", "token1", True),
        ("address", "pair", False),
        ("uint256", "", False),
    ),
]

V2_PAIR: Final[list[dict[str, Any]]] = [
    _event(
        "Swap",
        ("address", "sender", True),
        ("uint256", "amount0In", False),
        ("uint256", "amount1In", False),
        ("uint256", "amount0Out", False),
        ("uint256", "amount1Out", False),
        ("address", "to", True),
    ),
    _event(
        "Mint",
        ("address", "sender", True),
        ("uint256", "amount0", False),
        ("uint256", "amount1", False),
    ),
    _event(
        "Burn",
        ("address", "sender", True),
        ("uint256", "amount0", False),
        ("uint256", "amount1", False),
        ("address", "to", True),
    ),
    _event("Sync", ("uint112", "reserve0", False), ("uint112", "reserve1", False)),
    _view("token0", "address"),
    _view("token1", "address"),
    _view("factory", "address"),
    _view("getReserves", "uint112,uint112,uint32"),
]

V3_FACTORY: Final[list[dict[str, Any]]] = [
    _event(
        "PoolCreated",
        ("address", "token0", True),
        ("address", "token1", True),
        ("uint24", "fee", True),
        ("int24", "tickSpacing", False),
        ("address", "pool", False),
    ),
]

V3_POOL: Final[list[dict[str, Any]]] = [
    _event("Initialize", ("uint160", "sqrtPriceX96", False), ("int24", "tick", False)),
    _event(
        "Swap",
        ("address", "sender", True),
        ("address", "recipient", True),
        ("int256", "amount0", False),
        ("int256", "amount1", False),
        ("uint160", "sqrtPriceX96", False),
        ("uint128", "liquidity", False),
        ("int24", "tick", False),
    ),
    _event(
        "Mint",
        ("address", "sender", False),
        ("address", "owner", True),
        ("int24", "tickLower", True),
        ("int24", "tickUpper", True),
        ("uint128", "amount", False),
        ("uint256", "amount0", False),
        ("uint256", "amount1", False),
    ),
    _event(
        "Burn",
        ("address", "owner", True),
        ("int24", "tickLower", True),
        ("int24", "tickUpper", True),
        ("uint128", "amount", False),
        ("uint256", "amount0", False),
        ("uint256", "amount1", False),
    ),
    _event(
        "Collect",
        ("address", "owner", True),
        ("address", "recipient", False),
        ("int24", "tickLower", True),
        ("int24", "tickUpper", True),
        ("uint128", "amount0", False),
        ("uint128", "amount1", False),
    ),
    _event(
        "CollectProtocol",
        ("address", "sender", True),
        ("address", "recipient", True),
        ("uint128", "amount0", False),
        ("uint128", "amount1", False),
    ),
    _view("token0", "address"),
    _view("token1", "address"),
    _view("fee", "uint24"),
    _view("liquidity", "uint128"),
    _view("slot0", "uint160,int24,uint16,uint16,uint16,uint8,bool"),
]

ERC20: Final[list[dict[str, Any]]] = [
    _TRANSFER,
    _view("name", "string"),
    _view("symbol", "string"),
    _view("decimals", "uint8"),
    _view("totalSupply", "uint256"),
    _view("balanceOf", "uint256", ("address", "owner")),
]

ERC20_BYTES32: Final[list[dict[str, Any]]] = [
    # Early tokens (MKR, SAI) return their name and symbol as bytes32.
    _view("name", "bytes32"),
    _view("symbol", "bytes32"),
]
