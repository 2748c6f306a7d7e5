"""A small DEX on a local chain: real Uniswap V2 and V3 contracts, ERC-20s, and traders.

The factories, routers, V3's position manager and WETH9 are deployed as
shipped in the npm packages' build artifacts (``@uniswap/v2-core``,
``@uniswap/v2-periphery``, ``@uniswap/v3-core``, ``@uniswap/v3-periphery``); the
ERC-20s are ``chain/contracts/TestToken.sol`` compiled with solc-js against
OpenZeppelin. USDC and WETH sit at the addresses of the platform's USDC and
wrapped native coin (on Ethereum, platform 1, their mainnet addresses; on BSC
WBNB's): anvil may put any code and storage at any address, so the engine
prices them as the quote tokens they are there.

:class:`DevChain` deploys everything and :meth:`DevChain.act` drives the
chain one seeded action at a time: swaps through the routers, liquidity adds
and removes (V3: full-range positions through the position manager, removed
by ``decreaseLiquidity`` then ``collect``), plain transfers.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
from dataclasses import dataclass, field
from typing import Any, Final

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.sources.evm.anvil import chain_dir

__all__ = ["V3_FEE", "DevChain", "compile_token", "sqrt_price_x96"]

_DEADLINE: Final = 2**40
_MAX128: Final = 2**128 - 1
V3_FEE: Final = 3000  # 0.3 %, tick spacing 60
_FULL_RANGE: Final = (-887220, 887220)  # the widest ticks on a spacing of 60
_TOKEN_SOURCE: Final = "contracts/TestToken.sol"


def _artifact(path: str) -> tuple[list[Any], str]:
    """ABI and creation bytecode of an npm package's build artifact."""
    data = json.loads((chain_dir() / "node_modules" / path).read_text())
    code = data["bytecode"] if isinstance(data["bytecode"], str) else data["evm"]["bytecode"]
    return data["abi"], code if code.startswith("0x") else "0x" + code


def sqrt_price_x96(raw0: int, raw1: int) -> int:
    """``sqrt(raw1 / raw0) * 2**96``, the V3 price of ``raw0`` of token0 for ``raw1`` of token1."""
    return math.isqrt((raw1 << 192) // raw0)


def compile_token() -> tuple[list[Any], str]:
    """``TestToken``'s ABI and bytecode, compiled with solc-js (cached by source hash)."""
    root = chain_dir()
    source = (root / _TOKEN_SOURCE).read_text()
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    cache = root / ".build" / f"TestToken-{digest}.json"
    if not cache.exists():
        request = {
            "language": "Solidity",
            "sources": {_TOKEN_SOURCE: {"content": source}},
            "settings": {
                "optimizer": {"enabled": True, "runs": 200},
                "evmVersion": "paris",
                "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
            },
        }
        done = subprocess.run(
            [
                str(root / "node_modules/.bin/solcjs"),
                "--standard-json",
                "--base-path",
                ".",
                "--include-path",
                "node_modules/",
            ],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
            timeout=120,
        )
        out = json.loads(done.stdout[done.stdout.index("{") :])
        errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
        if errors:
            raise RuntimeError(f"solc: {errors}")
        contract = out["contracts"][_TOKEN_SOURCE]["TestToken"]
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"abi": contract["abi"], "bytecode": contract["evm"]["bytecode"]["object"]})
        )
        tmp.replace(cache)
    data = json.loads(cache.read_text())
    return data["abi"], "0x" + data["bytecode"]


@dataclass(slots=True)
class DevChain:
    """The deployed contracts and the accounts that use them."""

    w3: AsyncWeb3[Any]
    deployer: ChecksumAddress
    traders: list[ChecksumAddress]
    factory: AsyncContract
    router: AsyncContract
    tokens: dict[str, AsyncContract]  # by symbol
    pairs: dict[str, AsyncContract]  # by "BASE/QUOTE"
    v3_factory: AsyncContract
    positions: AsyncContract  # NonfungiblePositionManager
    v3_router: AsyncContract
    pools: dict[str, AsyncContract]  # V3, by "BASE/QUOTE"
    rng: random.Random = field(default_factory=random.Random)
    actions: dict[str, int] = field(default_factory=dict)

    # -- deployment ------------------------------------------------------------------------

    @classmethod
    async def deploy(
        cls, w3: AsyncWeb3[Any], *, seed: int = 0, traders: int = 5, platform_id: int = 1
    ) -> DevChain:
        accounts = await w3.eth.accounts
        me, people = accounts[0], list(accounts[1 : 1 + traders])
        usdc_ref, native_ref = _quotes(platform_id)
        usd = 10**usdc_ref.decimals
        token_abi, token_code = compile_token()
        tokens = {
            "USDC": await _deploy_token(
                w3,
                me,
                token_abi,
                token_code,
                "USD Coin",
                "USDC",
                usdc_ref.decimals,
                at=usdc_ref.address,
            ),
            "PEPE": await _deploy_token(w3, me, token_abi, token_code, "Pepe", "PEPE", 18),
            "SHIB": await _deploy_token(w3, me, token_abi, token_code, "Shiba Inu", "SHIB", 18),
        }
        weth_abi, weth_code = _artifact("@uniswap/v2-periphery/build/WETH9.json")
        weth_at = await _deploy(w3, me, weth_abi, weth_code)
        tokens["WETH"] = w3.eth.contract(
            await _place(w3, weth_at, native_ref.address), abi=weth_abi
        )
        f_abi, f_code = _artifact("@uniswap/v2-core/build/UniswapV2Factory.json")
        factory = w3.eth.contract(await _deploy(w3, me, f_abi, f_code, me), abi=f_abi)
        r_abi, r_code = _artifact("@uniswap/v2-periphery/build/UniswapV2Router02.json")
        router_at = await _deploy(w3, me, r_abi, r_code, factory.address, tokens["WETH"].address)
        router = w3.eth.contract(router_at, abi=r_abi)
        weth = tokens["WETH"].address
        v3f_abi, v3f_code = _artifact(
            "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
        )
        v3_factory = w3.eth.contract(await _deploy(w3, me, v3f_abi, v3f_code), abi=v3f_abi)
        periphery = "@uniswap/v3-periphery/artifacts/contracts"
        npm_abi, npm_code = _artifact(
            f"{periphery}/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
        )
        # The token descriptor only renders NFT metadata; any address will do.
        npm_at = await _deploy(w3, me, npm_abi, npm_code, v3_factory.address, weth, me)
        positions = w3.eth.contract(npm_at, abi=npm_abi)
        sr_abi, sr_code = _artifact(f"{periphery}/SwapRouter.sol/SwapRouter.json")
        v3_router = w3.eth.contract(
            await _deploy(w3, me, sr_abi, sr_code, v3_factory.address, weth), abi=sr_abi
        )
        chain = cls(
            w3, me, people, factory, router, tokens, {},
            v3_factory, positions, v3_router, {}, random.Random(seed),
        )  # fmt: skip
        # Everyone holds every token and lets the routers spend it.
        for who in [me, *people]:
            await chain._send(tokens["WETH"].functions.deposit(), who, value=2000 * 10**18)
            for sym, amount in (("USDC", 2_000_000 * usd),):
                await chain._send(tokens[sym].functions.mint(who, amount), me)
            for sym in ("PEPE", "SHIB"):
                await chain._send(tokens[sym].functions.mint(who, 10**12 * 10**18), me)
            for token in tokens.values():
                for spender in (router, positions, v3_router):
                    await chain._send(token.functions.approve(spender.address, 2**256 - 1), who)
        pair_abi, _ = _artifact("@uniswap/v2-core/build/UniswapV2Pair.json")
        seeds = {
            "PEPE/USDC": (10**11 * 10**18, 1_000_000 * usd),  # 0.00001 USD
            "PEPE/WETH": (10**11 * 10**18, 400 * 10**18),
            "SHIB/WETH": (10**11 * 10**18, 200 * 10**18),
            "WETH/USDC": (100 * 10**18, 250_000 * usd),
        }
        for name, (amount_base, amount_quote) in seeds.items():
            base, quote = name.split("/")
            await chain._add(me, base, quote, amount_base, amount_quote)
            address = await factory.functions.getPair(
                tokens[base].address, tokens[quote].address
            ).call()
            chain.pairs[name] = w3.eth.contract(address, abi=pair_abi)
        pool_abi, _ = _artifact(
            "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json"
        )
        v3_seeds = {
            "WETH/USDC": (50 * 10**18, 125_000 * usd),  # 2500 USD, as the V2 pair
            "PEPE/WETH": (10**11 * 10**18, 400 * 10**18),
        }
        for name, (amount_base, amount_quote) in v3_seeds.items():
            t0, t1, a0, a1 = chain._ordered(name, amount_base, amount_quote)
            call = positions.functions.createAndInitializePoolIfNecessary(
                t0, t1, V3_FEE, sqrt_price_x96(a0, a1)
            )
            await chain._send(call, me)
            address = await v3_factory.functions.getPool(t0, t1, V3_FEE).call()
            chain.pools[name] = w3.eth.contract(address, abi=pool_abi)
            await chain.mint(me, name, amount_base, amount_quote)
        return chain

    # -- actions ---------------------------------------------------------------------------

    async def act(self) -> str:
        """One seeded action by a random trader; returns its kind."""
        rng = self.rng
        who = rng.choice(self.traders)
        if rng.random() < 0.3:
            return await self._act_v3(who)
        name = rng.choice(list(self.pairs))
        base, quote = name.split("/")
        roll = rng.random()
        if roll < 0.75:
            kind = "swap"
            if rng.random() < 0.5:
                await self.swap(who, quote, base, fraction=rng.uniform(0.0005, 0.01), pair=name)
            else:
                await self.swap(who, base, quote, fraction=rng.uniform(0.0005, 0.01), pair=name)
        elif roll < 0.85:
            kind = "add"
            r_base, r_quote = await self.reserves(name)
            share = rng.uniform(0.001, 0.02)
            await self._add(who, base, quote, int(r_base * share), int(r_quote * share))
        elif roll < 0.92:
            kind = "remove"
            lp = self.pairs[name]
            held = await lp.functions.balanceOf(who).call()
            if held == 0:
                return "none"
            await self._send(lp.functions.approve(self.router.address, held), who)
            await self._send(
                self.router.functions.removeLiquidity(
                    self.tokens[base].address,
                    self.tokens[quote].address,
                    held // 2,
                    0,
                    0,
                    who,
                    _DEADLINE,
                ),
                who,
            )
        else:
            kind = "transfer"
            to = rng.choice([t for t in self.traders if t != who])
            token = self.tokens[rng.choice(list(self.tokens))]
            held = await token.functions.balanceOf(who).call()
            await self._send(token.functions.transfer(to, held // 100), who)
        self.actions[kind] = self.actions.get(kind, 0) + 1
        return kind

    async def _act_v3(self, who: ChecksumAddress) -> str:
        rng = self.rng
        name = rng.choice(list(self.pools))
        base, quote = name.split("/")
        roll = rng.random()
        if roll < 0.8:
            kind = "v3 swap"
            sold, bought = (quote, base) if rng.random() < 0.5 else (base, quote)
            await self.swap_v3(who, sold, bought, fraction=rng.uniform(0.0005, 0.01), pool=name)
        elif roll < 0.9:
            kind = "v3 add"
            held_base, held_quote = await self.held(name)
            share = rng.uniform(0.001, 0.02)
            await self.mint(who, name, int(held_base * share), int(held_quote * share))
        else:
            kind = "v3 remove"
            if not await self.burn(who, name, 0.5):
                return "none"
        self.actions[kind] = self.actions.get(kind, 0) + 1
        return kind

    async def swap_v3(
        self, who: ChecksumAddress, sold: str, bought: str, *, fraction: float, pool: str
    ) -> None:
        """Sell ``fraction`` of the V3 pool's balance of ``sold`` for ``bought``."""
        held = await self.tokens[sold].functions.balanceOf(self.pools[pool].address).call()
        amount = max(int(held * fraction), 1)
        params = (
            self.tokens[sold].address, self.tokens[bought].address, V3_FEE, who,
            _DEADLINE, amount, 0, 0,
        )  # fmt: skip
        await self._send(self.v3_router.functions.exactInputSingle(params), who)

    async def mint(
        self, who: ChecksumAddress, pool: str, amount_base: int, amount_quote: int
    ) -> None:
        """A full-range position of up to these amounts in the V3 pool."""
        t0, t1, a0, a1 = self._ordered(pool, amount_base, amount_quote)
        low, high = _FULL_RANGE
        params = (t0, t1, V3_FEE, low, high, a0, a1, 0, 0, who, _DEADLINE)
        await self._send(self.positions.functions.mint(params), who)

    async def burn(self, who: ChecksumAddress, pool: str, fraction: float) -> bool:
        """Take ``fraction`` of ``who``'s last position in ``pool`` out, and collect it all."""
        npm = self.positions
        target = {self.tokens[s].address for s in pool.split("/")}
        for index in reversed(range(await npm.functions.balanceOf(who).call())):
            token_id = await npm.functions.tokenOfOwnerByIndex(who, index).call()
            position = await npm.functions.positions(token_id).call()
            liquidity = position[7]
            if {position[2], position[3]} != target or liquidity == 0:
                continue
            take = max(int(liquidity * fraction), 1)
            decrease = (token_id, take, 0, 0, _DEADLINE)
            await self._send(npm.functions.decreaseLiquidity(decrease), who)
            collect = (token_id, who, _MAX128, _MAX128)
            await self._send(npm.functions.collect(collect), who)
            return True
        return False

    async def held(self, pool: str) -> tuple[int, int]:
        """The V3 pool's balances of ``(base, quote)`` as named in ``pool``."""
        address = self.pools[pool].address
        base, quote = pool.split("/")
        return (
            await self.tokens[base].functions.balanceOf(address).call(),
            await self.tokens[quote].functions.balanceOf(address).call(),
        )

    def _ordered(self, pool: str, amount_base: int, amount_quote: int) -> tuple[str, str, int, int]:
        """``(token0, token1, amount0, amount1)``: V3 orders a pool's tokens by address."""
        base, quote = (self.tokens[s].address for s in pool.split("/"))
        if int(base, 16) < int(quote, 16):
            return base, quote, amount_base, amount_quote
        return quote, base, amount_quote, amount_base

    async def swap(
        self, who: ChecksumAddress, sold: str, bought: str, *, fraction: float, pair: str
    ) -> None:
        """Sell ``fraction`` of the pool's reserve of ``sold`` for ``bought``."""
        r_base, r_quote = await self.reserves(pair)
        reserve = r_base if pair.startswith(sold + "/") else r_quote
        amount = max(int(reserve * fraction), 1)
        path = [self.tokens[sold].address, self.tokens[bought].address]
        call = self.router.functions.swapExactTokensForTokens(amount, 0, path, who, _DEADLINE)
        await self._send(call, who)

    async def reserves(self, pair: str) -> tuple[int, int]:
        """The pool's reserves of ``(base, quote)`` as named in ``pair``."""
        contract = self.pairs[pair]
        r0, r1, _ = await contract.functions.getReserves().call()
        token0 = await contract.functions.token0().call()
        base = pair.split("/")[0]
        return (r0, r1) if token0 == self.tokens[base].address else (r1, r0)

    async def _add(self, who: ChecksumAddress, base: str, quote: str, a: int, b: int) -> None:
        a_addr, b_addr = self.tokens[base].address, self.tokens[quote].address
        call = self.router.functions.addLiquidity(a_addr, b_addr, a, b, 0, 0, who, _DEADLINE)
        await self._send(call, who)

    async def _send(self, call: Any, sender: ChecksumAddress, value: int = 0) -> Any:
        tx = await call.transact({"from": sender, "value": value})
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx.hex()} reverted")
        return receipt


def _quotes(platform_id: int) -> tuple[Any, Any]:
    """The platform's USDC and wrapped native coin, as the engine knows them."""
    on_chain = [t for t in REFERENCE_TOKENS if t.chain == platform_id]
    usdc = next((t for t in on_chain if t.symbol == "USDC"), None)
    native = next((t for t in on_chain if t.quote_rank == 1 and t.address.startswith("0x")), None)
    if usdc is None or native is None:
        raise ValueError(f"no USDC and wrapped native coin known on platform {platform_id}")
    return usdc, native


async def _deploy(w3: AsyncWeb3[Any], me: ChecksumAddress, abi: Any, code: str, *args: Any) -> Any:
    tx = await w3.eth.contract(abi=abi, bytecode=code).constructor(*args).transact({"from": me})
    receipt = await w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise RuntimeError("deployment reverted")
    return receipt["contractAddress"]


async def _deploy_token(
    w3: AsyncWeb3[Any],
    me: ChecksumAddress,
    abi: Any,
    code: str,
    name: str,
    symbol: str,
    decimals: int,
    *,
    at: str | None = None,
) -> AsyncContract:
    address = await _deploy(w3, me, abi, code, name, symbol, decimals, 0)
    if at is not None:
        address = await _place(w3, address, at)
    contract: AsyncContract = w3.eth.contract(address, abi=abi)
    return contract


async def _place(w3: AsyncWeb3[Any], deployed: Any, target: str) -> ChecksumAddress:
    """Copy a freshly deployed contract (code and its first storage slots) to ``target``.

    The first slots hold what the constructors of WETH9 and OpenZeppelin's
    ERC20 store (name, symbol, decimals); balances start empty either way.
    """
    provider = w3.provider
    code = await w3.eth.get_code(deployed)
    await provider.make_request("anvil_setCode", [target, "0x" + bytes(code).hex()])
    for slot in range(8):
        value = await w3.eth.get_storage_at(deployed, slot)
        if any(value):
            await provider.make_request(
                "anvil_setStorageAt",
                [target, hex(slot), "0x" + bytes(value).hex()],
            )
    return AsyncWeb3.to_checksum_address(target)
