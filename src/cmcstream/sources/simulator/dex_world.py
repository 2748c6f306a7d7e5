"""The seeded DEX world: the chains, tokens, pools and wallets a simulation runs on.

A :class:`DexWorld` is static and pure data. It says what exists and how busy
each pool is expected to be; :class:`~cmcstream.sources.simulator.dex.DexSimulator`
brings it to life (balances, reserves, trades). The same seed gives the same
world, so a client can subscribe to the addresses ``cmcstream world --seed N``
prints and find them trading when ``cmcstream serve --seed N`` runs.

What a world holds, per chain (CoinMarketCap platform ids 1 Ethereum, 14 BSC,
16 Solana, 199 Base):

* **Reference tokens**: the real contracts of the chain's stablecoins, wrapped
  native coin and other majors (:data:`~cmcstream.engine.tokens.REFERENCE_TOKENS`),
  with approximate real supplies.
* **Major pools** at the real addresses of the real pairs (PancakeSwap's
  USDT/WBNB, Uniswap V2's USDC/WETH, Raydium's SOL/USDC, Aerodrome's WETH/USDC…),
  millions of USD deep.
* **Meme tokens**, generated: a made-up name and symbol, 9 or 18 decimals on EVM
  chains and 6 or 9 on Solana, a supply of 10⁸–10¹² tokens minted to its creator
  (a ``dev`` wallet), a pool against the wrapped native coin and sometimes a
  second, thinner one against a stablecoin; thousands to hundreds of thousands of
  USD deep. One meme per chain is the busiest by a wide margin
  (:meth:`DexWorld.busiest_token`) and freshly launched, so snipers go for it.
* **Wallets**: mostly untagged, with a few whales, smart money, KOLs, snipers,
  bots and bundlers, one ``dev`` per meme and one exchange hot wallet (untagged)
  that funds deposits.
* **One planned migration**: a meme whose liquidity moves from its main pool to a
  new pool on another DEX some minutes after the simulation starts.

Generated addresses look like the chain's: EVM ``0x`` and 40 lower-case hex
digits; Solana base58 of 44 characters that decodes to exactly 32 bytes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Final

from cmcstream.engine.tokens import NATIVE, REFERENCE_TOKENS, ReferenceToken

__all__ = [
    "CHAINS",
    "SOLANA",
    "TAGS",
    "DexWorld",
    "Migration",
    "PoolInfo",
    "TokenInfo",
    "WalletInfo",
    "evm_address",
    "solana_address",
]

CHAINS: Final[tuple[int, ...]] = (1, 14, 16, 199)
"""Simulated chains, as CoinMarketCap platform ids: Ethereum, BSC, Solana, Base."""

SOLANA: Final = 16

TAGS: Final[tuple[str, ...]] = ("whale", "smart_money", "kol", "sniper", "bot", "dev", "bundler")
"""Wallet labels the simulator knows (the holder channels' tag groups)."""

B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# Mean swaps per second of each chain at activity 1.0, bursts included: BSC and
# Solana carry most meme trading, Ethereum's gas keeps its count low.
_CHAIN_SWAPS_PER_S: Final[dict[int, float]] = {1: 0.35, 14: 1.3, 16: 1.1, 199: 0.45}
_MAJOR_SHARE: Final = 0.35  # of a chain's swaps, in pools of two reference tokens

# The DEX every meme trades on first, the one its optional stablecoin pool is on,
# and the one its liquidity migrates to.
_MAIN_DEX: Final[dict[int, str]] = {
    1: "uniswap-v2",
    14: "pancakeswap-v2",
    16: "raydium",
    199: "aerodrome",
}
_SECOND_DEX: Final[dict[int, str]] = {
    1: "sushiswap",
    14: "pancakeswap-v2",
    16: "meteora",
    199: "uniswap-v2",
}
_MIGRATION_DEX: Final[dict[int, str]] = {
    1: "sushiswap",
    14: "biswap",
    16: "pumpswap",
    199: "uniswap-v2",
}
FEE_BPS: Final[dict[str, int]] = {
    "uniswap-v2": 30,
    "sushiswap": 30,
    "pancakeswap-v2": 25,
    "biswap": 20,
    "raydium": 25,
    "meteora": 25,
    "pumpswap": 25,
    "aerodrome": 30,  # volatile pools
}
"""Swap fee of each constant-product DEX, in basis points of the amount in."""

# The real pairs of the majors: chain, DEX, the two tokens by symbol (in the
# pool's token0/token1 order), the pair's real address, its depth in USD, and
# its weight among the chain's major pools.
_MAJOR_POOLS: Final = (
    (1, "uniswap-v2", "USDC", "WETH", "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc", 42e6, 4.0),
    (1, "uniswap-v2", "WETH", "USDT", "0x0d4a11d5eeaac28ec3f61d100daf4d40471f1852", 26e6, 3.0),
    (1, "uniswap-v2", "WBTC", "WETH", "0xbb2b8038a1640196fbe3e38816f3e67cba72d940", 14e6, 1.5),
    (1, "uniswap-v2", "DAI", "WETH", "0xa478c2975ab1ea89e8196811f51a7b7ade33eb11", 9e6, 1.0),
    (1, "sushiswap", "WETH", "USDT", "0x06da0fd433c1a5d7a4faa01111c044910a184553", 5e6, 0.8),
    (14, "pancakeswap-v2", "USDT", "WBNB", "0x16b9a82891338f9ba80e2d6970fdda79d1eb0dae", 34e6, 5.0),
    (14, "pancakeswap-v2", "USDC", "WBNB", "0xd99c7f6c65857ac913a8f880a4cb84032ab2fc5b", 9e6, 2.0),
    (14, "pancakeswap-v2", "ETH", "WBNB", "0x74e4716e431f45807dcf19f284c7aa99f18a4fbc", 7e6, 1.5),
    (16, "raydium", "SOL", "USDC", "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", 22e6, 5.0),
    (16, "raydium", "SOL", "USDT", "7XawhbbxtsRcQA8KTkHT9f9nc6d69UwqCDh6U5EEbEmX", 5e6, 1.5),
    (199, "aerodrome", "WETH", "USDC", "0xcdac0d6c6c59727a65f871236188350531885c43", 16e6, 4.0),
)

# Approximate real supplies (in tokens) of the reference tokens, for holder
# shares; the simulated wallets hold a sliver of them.
_REFERENCE_SUPPLY: Final[dict[tuple[int, str], float]] = {
    (1, "USDT"): 9.6e10,
    (1, "USDC"): 4.2e10,
    (1, "DAI"): 3.6e9,
    (1, "WETH"): 2.6e6,
    (1, "WBTC"): 1.3e5,
    (14, "USDT"): 6.8e9,
    (14, "USDC"): 1.2e9,
    (14, "WBNB"): 1.1e6,
    (14, "ETH"): 4.6e5,
    (16, "USDC"): 8.9e9,
    (16, "USDT"): 2.4e9,
    (16, "SOL"): 1.2e7,
    (199, "USDC"): 4.1e9,
    (199, "WETH"): 2.2e5,
}

# Shares of a chain's wallets per tag (the rest are untagged). A few wallets
# carry two tags: some snipers are bots, some whales are smart money.
_TAG_SHARES: Final = (
    ("whale", 0.04),
    ("smart_money", 0.03),
    ("kol", 0.015),
    ("sniper", 0.03),
    ("bot", 0.03),
    ("bundler", 0.025),
)
_MIN_BOTS: Final = 3  # an arbitrageur and two relayers at least
# Shares of the long tail (memes but the busiest) listed without a supply, and
# without a creator: at least one meme of each per chain.
_UNKNOWN_SUPPLY: Final = 0.3
_UNKNOWN_DEV: Final = 0.3

_ADJECTIVES: Final = (
    "Baby", "Giga", "Turbo", "Based", "Sleepy", "Angry", "Rich", "Tiny", "Mega", "Smol",
    "Degen", "Lucky", "Cosmic", "Crying", "Dancing", "Golden", "Frozen", "Spicy", "Soggy",
    "Honest", "Feral", "Sigma", "Unemployed", "Wobbly", "Caffeinated", "Sir", "Dr", "Lil",
)  # fmt: skip
_NOUNS: Final = (
    "Frog", "Hamster", "Otter", "Capybara", "Goose", "Penguin", "Pudding", "Banana", "Llama",
    "Walrus", "Corgi", "Toad", "Moth", "Crab", "Wizard", "Noodle", "Potato", "Raccoon",
    "Pigeon", "Sloth", "Quokka", "Narwhal", "Duck", "Beaver", "Pickle", "Gecko", "Yeti",
    "Hippo", "Mochi", "Taco", "Badger", "Ferret", "Marmot", "Shrimp", "Lobster", "Pangolin",
)  # fmt: skip
_SUFFIXES: Final = ("", "", "", " Inu", " Coin", " AI", " 2.0", " Classic", " of Wall Street")
_CHAIN_FLAVOUR: Final[dict[int, str]] = {1: "Ether", 14: "BNB", 16: "Sol", 199: "Base"}
_MEME_SUPPLIES: Final = (
    100_000_000,
    420_690_000,
    1_000_000_000,
    1_000_000_000,
    6_900_000_000,
    10_000_000_000,
    69_420_000_000,
    100_000_000_000,
    420_690_000_000,
    1_000_000_000_000,
)


def evm_address(rng: random.Random) -> str:
    """A random EVM address: ``0x`` and 40 lower-case hex digits (160 bits)."""
    return f"0x{rng.getrandbits(160):040x}"


def solana_address(rng: random.Random) -> str:
    """A random 44-character base58 string that decodes to exactly 32 bytes.

    A 44-digit base58 number stays below 2²⁵⁶ only when its leading digit is at
    most 16 (58⁴³·17 > 2²⁵⁶), and a leading ``1`` would encode a zero byte, so
    the first character is one of digits 1–16 and the other 43 are free.
    """
    return B58_ALPHABET[rng.randrange(1, 17)] + "".join(rng.choices(B58_ALPHABET, k=43))


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token of the world.

    Attributes:
        chain: CoinMarketCap platform id.
        address: contract (EVM, lower-case hex) or mint (Solana, base58).
        symbol: ticker.
        name: display name.
        decimals: on-chain decimals.
        total_supply: supply in raw units (``tokens × 10**decimals``).
        creator: the deployer (the meme's ``dev`` wallet); ``None`` for reference
            tokens, which existed long before the simulation.
        cmc_id: CoinMarketCap id whose market price prices this token; ``None``
            for memes (priced by their pools).
        price_usd: a meme's USD price when the simulation starts (its launch
            market cap over its supply); ``None`` for reference tokens.
        fresh: launched as the simulation's history starts: snipers buy it in
            its first seconds.
        supply_known: whether its listing states the supply; a source that
            does not know it lists 0, so the market cap is unknown (null).
        dev_known: whether its listing names the creator; when not, the
            creator is an untagged wallet and the token has no dev data.
    """

    chain: int
    address: str
    symbol: str
    name: str
    decimals: int
    total_supply: int
    creator: str | None
    cmc_id: int | None
    price_usd: float | None = None
    fresh: bool = False
    supply_known: bool = True
    dev_known: bool = True

    @property
    def listed_supply(self) -> int:
        """The supply its listing states: ``total_supply``, or 0 when unknown."""
        return self.total_supply if self.supply_known else 0

    @property
    def listed_creator(self) -> str | None:
        """The creator its listing names, ``None`` when unknown."""
        return self.creator if self.dev_known else None

    @property
    def is_reference(self) -> bool:
        """Whether the market prices this token (a stablecoin, wrapped native or major)."""
        return self.cmc_id is not None


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A constant-product pool (pair).

    Attributes:
        chain: CoinMarketCap platform id.
        address: pair contract (EVM) or pool account (Solana).
        dex: the DEX, e.g. ``"pancakeswap-v2"``, ``"uniswap-v2"``, ``"raydium"``.
        token0: address of the pool's first token.
        token1: address of the second.
        fee_bps: swap fee, basis points of the amount in.
        depth_usd: USD value of both reserves when the pool is seeded.
        activity: mean swaps per second at activity 1.0, bursts included.
    """

    chain: int
    address: str
    dex: str
    token0: str
    token1: str
    fee_bps: int
    depth_usd: float
    activity: float


@dataclass(frozen=True, slots=True)
class WalletInfo:
    """A wallet and its analytics labels (empty for most wallets).

    Attributes:
        chain: CoinMarketCap platform id.
        address: account address.
        tags: labels from :data:`TAGS`.
    """

    chain: int
    address: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Migration:
    """A meme's liquidity moving from its main pool to a new one.

    Attributes:
        chain: CoinMarketCap platform id.
        token: the meme's address.
        source: address of the pool the liquidity leaves.
        target: the pool it moves to, created at the moment of the migration.
        after_ms: delay from the start of the simulation, in ms.
    """

    chain: int
    token: str
    source: str
    target: PoolInfo
    after_ms: int


@dataclass(frozen=True)
class DexWorld:
    """Everything that exists on the simulated chains, built from a seed.

    Attributes:
        seed: the seed it was built from.
        chains: platform ids, in a fixed order.
        tokens: reference tokens, then memes, chain by chain.
        pools: pools that exist from the start (migration targets are in
            ``migrations``).
        wallets: every wallet, chain by chain; tagged wallets and the exchange first.
        migrations: planned migrations, at most one per chain.
        exchanges: the exchange hot wallet of each chain (it funds deposits).
    """

    seed: int
    chains: tuple[int, ...]
    tokens: list[TokenInfo]
    pools: list[PoolInfo]
    wallets: list[WalletInfo]
    migrations: list[Migration]
    exchanges: dict[int, str]
    _tokens: dict[tuple[int, str], TokenInfo] = field(init=False, repr=False, compare=False)
    _pools: dict[tuple[int, str], PoolInfo] = field(init=False, repr=False, compare=False)
    _wallets: dict[tuple[int, str], WalletInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        every_pool = [*self.pools, *(m.target for m in self.migrations)]
        object.__setattr__(self, "_tokens", {(t.chain, t.address): t for t in self.tokens})
        object.__setattr__(self, "_pools", {(p.chain, p.address): p for p in every_pool})
        object.__setattr__(self, "_wallets", {(w.chain, w.address): w for w in self.wallets})

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls, seed: int = 0, *, memes_per_chain: int = 6, wallets_per_chain: int = 400
    ) -> DexWorld:
        """Build the world of ``seed``.

        Args:
            seed: seed of every random choice (addresses, names, supplies, tags).
            memes_per_chain: generated meme tokens on each chain.
            wallets_per_chain: wallets on each chain, the exchange and the
                memes' creators included.

        Returns:
            The world; the same arguments give an equal world.

        Raises:
            ValueError: when there is not at least one meme per chain, or not
                room for the tagged wallets (``wallets_per_chain`` under
                ``memes_per_chain + 20``).
        """
        if memes_per_chain < 1:
            raise ValueError("memes_per_chain must be at least 1")
        if wallets_per_chain < memes_per_chain + 20:
            raise ValueError("wallets_per_chain must be at least memes_per_chain + 20")
        rng = random.Random(f"cmcstream.dex_world:{seed}")
        gaps = random.Random(f"cmcstream.dex_world.gaps:{seed}")
        tokens: list[TokenInfo] = []
        pools: list[PoolInfo] = []
        wallets: list[WalletInfo] = []
        migrations: list[Migration] = []
        exchanges: dict[int, str] = {}
        for chain in CHAINS:
            built = _build_chain(rng, gaps, chain, memes_per_chain, wallets_per_chain)
            tokens += built.tokens
            pools += built.pools
            wallets += built.wallets
            migrations += built.migrations
            exchanges[chain] = built.exchange
        return cls(seed, CHAINS, tokens, pools, wallets, migrations, exchanges)

    # -- lookups -----------------------------------------------------------------------------

    def token(self, chain: int, address: str) -> TokenInfo:
        """The token at ``address`` on ``chain``.

        Raises:
            KeyError: when there is none.
        """
        return self._tokens[(chain, address)]

    def pool(self, chain: int, address: str) -> PoolInfo:
        """The pool at ``address`` on ``chain``, migration targets included.

        Raises:
            KeyError: when there is none.
        """
        return self._pools[(chain, address)]

    def wallet(self, chain: int, address: str) -> WalletInfo:
        """The wallet ``address`` on ``chain``.

        Raises:
            KeyError: when it is not one of the world's.
        """
        return self._wallets[(chain, address)]

    def find_token(self, chain: int, address: str) -> TokenInfo | None:
        """The token at ``address`` on ``chain``, or ``None``."""
        return self._tokens.get((chain, address))

    def find_pool(self, chain: int, address: str) -> PoolInfo | None:
        """The pool at ``address`` on ``chain`` (migration targets included), or ``None``."""
        return self._pools.get((chain, address))

    def tokens_on(self, chain: int) -> list[TokenInfo]:
        """Every token of ``chain``, reference tokens first."""
        return [t for t in self.tokens if t.chain == chain]

    def memes(self, chain: int) -> list[TokenInfo]:
        """The generated meme tokens of ``chain``."""
        return [t for t in self.tokens if t.chain == chain and t.cmc_id is None]

    def reference(self, chain: int, symbol: str) -> TokenInfo:
        """The reference token ``symbol`` (e.g. ``"WBNB"``) of ``chain``.

        Raises:
            KeyError: when the chain has no such reference token.
        """
        for t in self.tokens:
            if t.chain == chain and t.cmc_id is not None and t.symbol == symbol:
                return t
        raise KeyError((chain, symbol))

    def pools_on(self, chain: int) -> list[PoolInfo]:
        """The pools of ``chain`` that exist from the start."""
        return [p for p in self.pools if p.chain == chain]

    def pools_of(self, chain: int, token: str) -> list[PoolInfo]:
        """The pools that exist from the start and trade ``token``."""
        return [p for p in self.pools if p.chain == chain and token in (p.token0, p.token1)]

    def wallets_on(self, chain: int) -> list[WalletInfo]:
        """Every wallet of ``chain``."""
        return [w for w in self.wallets if w.chain == chain]

    def tagged(self, chain: int, tag: str) -> list[WalletInfo]:
        """The wallets of ``chain`` that carry ``tag``."""
        return [w for w in self.wallets if w.chain == chain and tag in w.tags]

    def busiest_token(self, chain: int) -> TokenInfo:
        """The meme of ``chain`` with the most expected swaps per second.

        Raises:
            KeyError: when ``chain`` is not simulated.
        """
        memes = self.memes(chain)
        if not memes:
            raise KeyError(chain)
        rates = {t.address: 0.0 for t in memes}
        for p in self.pools:
            if p.chain == chain:
                for address in (p.token0, p.token1):
                    if address in rates:
                        rates[address] += p.activity
        return max(memes, key=lambda t: rates[t.address])


# ---------------------------------------------------------------------------
# Building one chain
# ---------------------------------------------------------------------------


@dataclass
class _ChainParts:
    tokens: list[TokenInfo]
    pools: list[PoolInfo]
    wallets: list[WalletInfo]
    migrations: list[Migration]
    exchange: str


def _build_chain(
    rng: random.Random, gaps: random.Random, chain: int, n_memes: int, n_wallets: int
) -> _ChainParts:
    solana = chain == SOLANA
    new_address = solana_address if solana else evm_address
    used: set[str] = set()

    def fresh_address() -> str:
        while True:
            address = new_address(rng)
            if address not in used:
                used.add(address)
                return address

    refs = [r for r in REFERENCE_TOKENS if r.chain == chain]
    used.update(r.address for r in refs)
    tokens = [_reference_info(r) for r in refs]
    by_symbol = {r.symbol: r for r in refs}
    wrapped = next(r for r in refs if r.quote_rank == 1 and r.cmc_id == NATIVE[chain][1])
    stables = [r for r in refs if r.quote_rank == 0]

    # Wallets: the exchange, the tagged ones, one dev per meme, then untagged.
    exchange = fresh_address()
    wallets = [WalletInfo(chain, exchange, ())]
    tag_lists: dict[str, list[str]] = {}
    for tag, share in _TAG_SHARES:
        count = max(1, round(share * n_wallets))
        if tag == "bot":
            count = max(count, _MIN_BOTS)
        tag_lists[tag] = [fresh_address() for _ in range(count)]
    extra: dict[str, list[str]] = {}
    # Overlaps: a fifth of the snipers run as bots, a tenth of the whales trade smart.
    for address in tag_lists["sniper"]:
        if rng.random() < 0.2:
            extra.setdefault(address, []).append("bot")
    for address in tag_lists["whale"]:
        if rng.random() < 0.1:
            extra.setdefault(address, []).append("smart_money")
    # The arbitrageur leads the bot list: it is the most active wallet of the chain.
    for tag, _ in sorted(_TAG_SHARES, key=lambda ts: ts[0] != "bot"):
        for address in tag_lists[tag]:
            wallets.append(WalletInfo(chain, address, (tag, *extra.get(address, ()))))
    devs = [fresh_address() for _ in range(n_memes)]
    wallets += [WalletInfo(chain, d, ("dev",)) for d in devs]
    while len(wallets) < n_wallets:
        wallets.append(WalletInfo(chain, fresh_address(), ()))

    # Major pools at the real addresses of the real pairs.
    chain_rate = _CHAIN_SWAPS_PER_S[chain]
    majors = [m for m in _MAJOR_POOLS if m[0] == chain and m[2] in by_symbol and m[3] in by_symbol]
    major_weight = sum(m[6] for m in majors)
    pools: list[PoolInfo] = []
    for _, dex, s0, s1, address, depth, weight in majors:
        pools.append(
            PoolInfo(
                chain,
                address,
                dex,
                by_symbol[s0].address,
                by_symbol[s1].address,
                FEE_BPS[dex],
                depth * math.exp(rng.uniform(-0.3, 0.3)),
                chain_rate * _MAJOR_SHARE * weight / major_weight,
            )
        )
    used.update(m[4] for m in majors)

    # Memes: the first is the busiest by far; the others share a heavy tail.
    hype = [10.0] + [10.0 * rng.uniform(0.04, 0.4) ** 1.5 for _ in range(n_memes - 1)]
    meme_rate = chain_rate * (1.0 - _MAJOR_SHARE if majors else 1.0) / sum(hype)
    # ...and busier than any major pool of its chain (Base has a single one).
    busiest_major = max((p.activity for p in pools), default=0.0)
    hype[0] = max(hype[0], 1.5 * busiest_major / meme_rate)
    symbols = {t.symbol for t in tokens}
    memes: list[TokenInfo] = []
    meme_pools: list[tuple[TokenInfo, PoolInfo]] = []
    for i in range(n_memes):
        symbol, name = _meme_name(rng, chain, symbols)
        symbols.add(symbol)
        decimals = rng.choice((6, 9)) if solana else rng.choice((9, 18))
        supply = rng.choice(_MEME_SUPPLIES)
        busiest = i == 0
        mcap = math.exp(
            rng.uniform(math.log(2e6), math.log(3e7))
            if busiest
            else rng.uniform(math.log(6e4), math.log(8e6))
        )
        address = fresh_address()
        meme = TokenInfo(
            chain,
            address,
            symbol,
            name,
            decimals,
            supply * 10**decimals,
            devs[i],
            None,
            price_usd=mcap / supply,
            fresh=busiest,
        )
        memes.append(meme)
        rate = meme_rate * hype[i]
        main_depth = min(max(mcap * rng.uniform(0.05, 0.3), 4e3), 6e5)
        two_pools = bool(stables) and (busiest or rng.random() < 0.5)
        main_share = rng.uniform(0.65, 0.85) if two_pools else 1.0
        main = _pool(
            chain,
            fresh_address(),
            _MAIN_DEX[chain],
            address,
            wrapped.address,
            solana,
            main_depth,
            rate * main_share,
        )
        pools.append(main)
        meme_pools.append((meme, main))
        if two_pools:
            stable = rng.choice(stables)
            depth = max(main_depth * rng.uniform(0.08, 0.35), 2e3)
            pools.append(
                _pool(
                    chain,
                    fresh_address(),
                    _SECOND_DEX[chain],
                    address,
                    stable.address,
                    solana,
                    depth,
                    rate * (1 - main_share),
                )
            )
    # Some of the long tail lacks data, as real listings do: a separate draw, so
    # every address and name stays what it was for the seed.
    tail = list(range(1, n_memes))
    unknown_supply = {i for i in tail if gaps.random() < _UNKNOWN_SUPPLY}
    unknown_dev = {i for i in tail if gaps.random() < _UNKNOWN_DEV}
    if tail and not unknown_supply:
        unknown_supply.add(gaps.choice(tail))
    if tail and not unknown_dev:
        unknown_dev.add(gaps.choice(tail))
    for i in sorted(unknown_supply | unknown_dev):
        memes[i] = replace(memes[i], supply_known=i not in unknown_supply,
                           dev_known=i not in unknown_dev)  # fmt: skip
    anonymous = {devs[i] for i in unknown_dev}
    wallets = [WalletInfo(chain, w.address, ()) if w.address in anonymous else w for w in wallets]
    meme_pools = [(memes[i], pool) for i, (_, pool) in enumerate(meme_pools)]
    tokens += memes

    migrations: list[Migration] = []
    # A meme other than the busiest (when there is one) moves its main pool's
    # liquidity some minutes in, so every run of ten minutes or more sees one.
    meme, source = meme_pools[1] if len(meme_pools) > 1 else meme_pools[0]
    target = _pool(
        chain,
        fresh_address(),
        _MIGRATION_DEX[chain],
        meme.address,
        wrapped.address,
        solana,
        source.depth_usd,
        source.activity,
    )
    after_ms = rng.randrange(4 * 60_000, 9 * 60_000)
    migrations.append(Migration(chain, meme.address, source.address, target, after_ms))
    return _ChainParts(tokens, pools, wallets, migrations, exchange)


def _pool(
    chain: int,
    address: str,
    dex: str,
    meme: str,
    quote: str,
    solana: bool,
    depth_usd: float,
    activity: float,
) -> PoolInfo:
    # Uniswap-style pairs sort their tokens by address; Raydium-style pools list
    # the base (the meme) first and the quote second.
    token0, token1 = (meme, quote) if solana or meme < quote else (quote, meme)
    return PoolInfo(chain, address, dex, token0, token1, FEE_BPS[dex], depth_usd, activity)


def _reference_info(ref: ReferenceToken) -> TokenInfo:
    supply = _REFERENCE_SUPPLY.get((ref.chain, ref.symbol), 1e9)
    return TokenInfo(
        ref.chain,
        ref.address,
        ref.symbol,
        ref.name,
        ref.decimals,
        int(supply) * 10**ref.decimals,
        None,
        ref.cmc_id,
    )


def _meme_name(rng: random.Random, chain: int, taken: set[str]) -> tuple[str, str]:
    """A made-up (symbol, name) not yet taken on the chain."""
    for _ in range(1000):
        adjective = rng.choice(_ADJECTIVES)
        noun = rng.choice(_NOUNS)
        style = rng.random()
        if style < 0.45:
            name = f"{adjective} {noun}{rng.choice(_SUFFIXES)}"
            symbol = (adjective[0] + noun).upper()[:6]
        elif style < 0.7:
            suffix, tail = rng.choice(((" Inu", "INU"), (" Coin", ""), ("AI", "AI"), (" Cult", "")))
            name = noun + suffix
            symbol = noun.upper()[:5] + tail
        elif style < 0.85:
            name = f"{noun} on {_CHAIN_FLAVOUR[chain]}"
            symbol = noun.upper()[:4] + _CHAIN_FLAVOUR[chain][0]
        else:
            name = f"{adjective}{noun}"
            symbol = (adjective[:3] + noun[:3]).upper()
        if symbol not in taken:
            return symbol, name
    raise RuntimeError("ran out of meme names")  # pragma: no cover - 28·36 names per chain
