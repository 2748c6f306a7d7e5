"""Logs to decoded events, with web3's contract events (the ABI codec of eth-abi).

:func:`decode` turns one raw log (as ``eth_getLogs`` returns it through web3)
into a :class:`Decoded`: the event name (a Uniswap V3 pool's events are
prefixed ``V3``, as its ``Swap``, ``Mint`` and ``Burn`` differ from a V2
pair's), the emitting address and the arguments, addresses lower-cased as the
engine spells them. Logs of other events (or malformed ones, such as a
non-standard ``Transfer`` with an unindexed sender) decode to ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract.contract import ContractEvent
from web3.exceptions import LogTopicError, MismatchedABI

from cmcstream.sources.evm.abi import ERC20, V2_FACTORY, V2_PAIR, V3_FACTORY, V3_POOL

__all__ = ["CREATIONS", "TOPICS", "Decoded", "decode", "topic_of"]

# WETH9 mints on deposit and burns on withdrawal without a Transfer log.
_WETH_EVENTS: Final[list[dict[str, Any]]] = [
    {
        "anonymous": False,
        "name": name,
        "type": "event",
        "inputs": [
            {"indexed": True, "name": who, "type": "address"},
            {"indexed": False, "name": "wad", "type": "uint256"},
        ],
    }
    for name, who in (("Deposit", "dst"), ("Withdrawal", "src"))
]


def topic_of(entry: Mapping[str, Any]) -> bytes:
    """An event's topic 0: the keccak of its canonical signature."""
    types = ",".join(i["type"] for i in entry["inputs"])
    return keccak(text=f"{entry['name']}({types})")


def _events() -> dict[bytes, tuple[str, ContractEvent]]:
    offline = Web3()  # no provider: only the ABI codec is used
    out: dict[bytes, tuple[str, ContractEvent]] = {}
    groups = (("", V2_FACTORY), ("", V2_PAIR), ("", V3_FACTORY), ("V3", V3_POOL))
    for prefix, abi in (*groups, ("", ERC20), ("", _WETH_EVENTS)):
        contract = offline.eth.contract(abi=abi)
        for entry in abi:
            if entry["type"] == "event":
                name = entry["name"]
                out[topic_of(entry)] = (prefix + name, contract.events[name]())
    return out


_BY_TOPIC: Final = _events()
TOPICS: Final[tuple[str, ...]] = tuple("0x" + t.hex() for t in _BY_TOPIC)
"""Topic 0 of every event the source reads, for ``eth_getLogs`` and ``eth_subscribe``."""
CREATIONS: Final[tuple[str, ...]] = tuple(
    "0x" + topic_of(abi[0]).hex() for abi in (V2_FACTORY, V3_FACTORY)
)
"""Topic 0 of the factories' ``PairCreated`` and ``PoolCreated``."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded log."""

    name: str
    address: str  # the emitting contract, lower-case
    args: dict[str, Any]  # addresses lower-case, integers as integers
    block: int
    tx: str
    log_index: int


def decode(log: Mapping[str, Any]) -> Decoded | None:
    """The decoded event of ``log``, or ``None`` when it is none the source reads."""
    topics = log["topics"]
    if not topics:
        return None
    found = _BY_TOPIC.get(bytes(topics[0]))
    if found is None:
        return None
    name, event = found
    try:
        data = event.process_log(log)
    except (MismatchedABI, LogTopicError, ValueError):
        return None  # same signature, other indexing (ERC-721 Transfer, say)
    args = {k: v.lower() if isinstance(v, str) else v for k, v in data["args"].items()}
    return Decoded(
        name=name,
        address=str(log["address"]).lower(),
        args=args,
        block=int(log["blockNumber"]),
        tx="0x" + bytes(log["transactionHash"]).hex(),
        log_index=int(log["logIndex"]),
    )
