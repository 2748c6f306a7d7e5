"""Token and pair facts read with ``eth_call``, each asked once.

A token's name, symbol, decimals and supply do not change in ways the feed
shows (supply moves are tracked through its ``Transfer`` mints and burns by
the holder book), so they are cached for the life of the source. A pair's
(or a V3 pool's) tokens and fee never change either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint

from cmcstream.sources.evm.abi import ERC20, ERC20_BYTES32, V2_PAIR, V3_POOL

__all__ = ["ChainReader", "TokenInfo"]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    address: str
    name: str
    symbol: str
    decimals: int
    total_supply: int
    creator: str | None


class ChainReader:
    """``eth_call`` reads of token metadata and pair state, cached where they cannot change."""

    def __init__(self, w3: AsyncWeb3[Any]) -> None:
        self._w3 = w3
        self._tokens: dict[str, TokenInfo | None] = {}
        self._pairs: dict[str, tuple[str, str] | None] = {}
        self._v3: dict[str, tuple[str, str, int] | None] = {}
        self.calls = 0
        self._creators = True  # until the node says it has no ots_getContractCreator

    def _contract(self, address: str, abi: list[Any]) -> Any:
        return self._w3.eth.contract(AsyncWeb3.to_checksum_address(address), abi=abi)

    async def token(self, address: str) -> TokenInfo | None:
        """The metadata of the ERC-20 at ``address``; ``None`` when it has no decimals."""
        if address in self._tokens:
            return self._tokens[address]
        erc20 = self._contract(address, ERC20)
        info: TokenInfo | None
        try:
            decimals = int(await self._call(erc20.functions.decimals()))
            supply = int(await self._call(erc20.functions.totalSupply()))
            name = await self._text(address, "name")
            symbol = await self._text(address, "symbol")
            info = TokenInfo(address, name, symbol, decimals, supply, await self.creator(address))
        except (Web3Exception, ValueError, OverflowError):
            info = None
        self._tokens[address] = info
        return info

    async def creator(self, address: str) -> str | None:
        """The account that deployed ``address``, where the node can tell.

        Plain JSON-RPC has no call for it; Otterscan's ``ots_getContractCreator``
        (Erigon, anvil, Reth) answers at once. Without it, ``None``: the
        creator is then not known (and no one is the token's ``dev``).
        """
        if not self._creators:
            return None
        self.calls += 1
        try:
            response = await self._w3.provider.make_request(
                RPCEndpoint("ots_getContractCreator"), [AsyncWeb3.to_checksum_address(address)]
            )
        except (Web3Exception, ValueError):
            self._creators = False
            return None
        if "error" in response:
            self._creators = False
            return None
        found = response.get("result")
        return str(found["creator"]).lower() if isinstance(found, dict) else None

    async def _text(self, address: str, fn: str) -> str:
        try:
            value = await self._call(self._contract(address, ERC20).functions[fn]())
            return str(value)
        except (Web3Exception, ValueError, OverflowError):
            raw = await self._call(self._contract(address, ERC20_BYTES32).functions[fn]())
            return bytes(raw).rstrip(b"\0").decode("utf-8", "replace")

    async def pair_tokens(self, pair: str) -> tuple[str, str] | None:
        """``(token0, token1)`` of a Uniswap V2 pair; ``None`` when ``pair`` is none."""
        if pair in self._pairs:
            return self._pairs[pair]
        contract = self._contract(pair, V2_PAIR)
        tokens: tuple[str, str] | None
        try:
            t0 = str(await self._call(contract.functions.token0())).lower()
            t1 = str(await self._call(contract.functions.token1())).lower()
            tokens = (t0, t1)
        except (Web3Exception, ValueError, OverflowError):
            tokens = None
        self._pairs[pair] = tokens
        return tokens

    async def reserves(self, pair: str, block: int) -> tuple[int, int]:
        """A pair's reserves as of the end of ``block``."""
        r0, r1, _ = await self._call(
            self._contract(pair, V2_PAIR).functions.getReserves(), block=block
        )
        return int(r0), int(r1)

    async def v3_pool(self, pool: str) -> tuple[str, str, int] | None:
        """``(token0, token1, fee)`` of a Uniswap V3 pool; ``None`` when ``pool`` is none."""
        if pool in self._v3:
            return self._v3[pool]
        contract = self._contract(pool, V3_POOL)
        found: tuple[str, str, int] | None
        try:
            t0 = str(await self._call(contract.functions.token0())).lower()
            t1 = str(await self._call(contract.functions.token1())).lower()
            found = (t0, t1, int(await self._call(contract.functions.fee())))
        except (Web3Exception, ValueError, OverflowError):
            found = None
        self._v3[pool] = found
        return found

    async def sqrt_price(self, pool: str, block: int) -> int:
        """A V3 pool's ``slot0().sqrtPriceX96`` as of the end of ``block`` (0: not initialized)."""
        slot0 = await self._call(self._contract(pool, V3_POOL).functions.slot0(), block=block)
        return int(slot0[0])

    async def balance_of(self, token: str, owner: str, block: int) -> int:
        """``token.balanceOf(owner)`` as of the end of ``block``."""
        erc20 = self._contract(token, ERC20)
        fn = erc20.functions.balanceOf(AsyncWeb3.to_checksum_address(owner))
        return int(await self._call(fn, block=block))

    async def native_balance(self, wallet: str, block: int) -> int:
        self.calls += 1
        return int(await self._w3.eth.get_balance(AsyncWeb3.to_checksum_address(wallet), block))

    async def _call(self, fn: Any, block: int | str = "latest") -> Any:
        self.calls += 1
        return await fn.call(block_identifier=block)
