"""DexWorld: the static, seeded world the DEX simulator runs on."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from cmcstream.engine.tokens import NATIVE, REFERENCE_TOKENS
from cmcstream.sources.simulator.dex_world import (
    B58_ALPHABET,
    CHAINS,
    FEE_BPS,
    TAGS,
    DexWorld,
)

EVM = re.compile(r"^0x[0-9a-f]{40}$")


def b58decode(text: str) -> bytes:
    """Base58 (Bitcoin alphabet) to bytes, leading ``1``s as zero bytes."""
    n = 0
    for ch in text:
        n = n * 58 + B58_ALPHABET.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def is_solana_address(text: str) -> bool:
    return 32 <= len(text) <= 44 and set(text) <= set(B58_ALPHABET) and len(b58decode(text)) == 32


@pytest.fixture(scope="module")
def world() -> DexWorld:
    return DexWorld.build(7)


def symbol_of(world: DexWorld, chain: int, address: str) -> str:
    return world.token(chain, address).symbol


# -- determinism ------------------------------------------------------------------------------


def test_the_same_seed_builds_the_same_world() -> None:
    assert DexWorld.build(3) == DexWorld.build(3)


def test_a_different_seed_builds_a_different_world() -> None:
    a, b = DexWorld.build(3), DexWorld.build(4)
    assert {t.address for t in a.memes(14)}.isdisjoint({t.address for t in b.memes(14)})
    assert [w.address for w in a.wallets] != [w.address for w in b.wallets]


# -- shape ------------------------------------------------------------------------------------


def test_chains_and_sizes() -> None:
    world = DexWorld.build(1, memes_per_chain=4, wallets_per_chain=120)
    assert world.chains == CHAINS == (1, 14, 16, 199)
    for chain in world.chains:
        assert len(world.memes(chain)) == 4
        assert len(world.wallets_on(chain)) == 120
        assert len(world.migrations) == len(world.chains)


@pytest.mark.parametrize(
    ("memes", "wallets"), [(0, 400), (6, 25), (-1, 400)], ids=["no-memes", "few-wallets", "neg"]
)
def test_impossible_sizes_are_refused(memes: int, wallets: int) -> None:
    with pytest.raises(ValueError, match="must be at least"):
        DexWorld.build(0, memes_per_chain=memes, wallets_per_chain=wallets)


def test_addresses_look_like_their_chain(world: DexWorld) -> None:
    generated = [
        *((t.chain, t.address) for t in world.tokens if t.cmc_id is None),
        *((p.chain, p.address) for p in world.pools),
        *((m.chain, m.target.address) for m in world.migrations),
        *((w.chain, w.address) for w in world.wallets),
    ]
    for chain, address in generated:
        if chain == 16:
            assert len(address) == 44, address
            assert is_solana_address(address), address
        else:
            assert EVM.match(address), address
    # Every address is unique on its chain.
    assert len(set(generated)) == len(generated)
    # The real pools of the majors are real addresses too.
    for p in world.pools:
        assert is_solana_address(p.address) if p.chain == 16 else EVM.match(p.address)


def test_reference_tokens_are_the_real_contracts(world: DexWorld) -> None:
    for ref in REFERENCE_TOKENS:
        info = world.token(ref.chain, ref.address)
        assert (info.symbol, info.decimals, info.cmc_id) == (ref.symbol, ref.decimals, ref.cmc_id)
        assert info.creator is None
        assert info.is_reference
        assert info.total_supply > 10**ref.decimals * 10_000


def test_memes_are_plausible(world: DexWorld) -> None:
    for chain in world.chains:
        memes = world.memes(chain)
        symbols = [t.symbol for t in world.tokens_on(chain)]
        assert len(set(symbols)) == len(symbols)  # no two tokens share a ticker on a chain
        for t in memes:
            assert t.cmc_id is None
            assert not t.is_reference
            assert t.decimals in ((6, 9) if chain == 16 else (9, 18))
            tokens = t.total_supply // 10**t.decimals
            assert 10**8 <= tokens <= 10**12
            assert t.total_supply % 10**t.decimals == 0
            assert t.creator is not None
            # Its creator is tagged, unless the listing leaves the dev out.
            assert ("dev" in world.wallet(chain, t.creator).tags) == t.dev_known
            assert t.price_usd is not None
            assert 10_000 < t.price_usd * tokens < 100_000_000  # launch market cap, USD
            assert t.symbol.isupper()
            assert 2 <= len(t.symbol) <= 8
            assert t.name


def test_every_major_pair_has_a_pool(world: DexWorld) -> None:
    pairs = {
        (
            p.chain,
            frozenset((symbol_of(world, p.chain, p.token0), symbol_of(world, p.chain, p.token1))),
        )
        for p in world.pools
    }
    expected = [
        (14, "WBNB", "USDT"),
        (14, "WBNB", "USDC"),
        (14, "ETH", "WBNB"),
        (1, "WETH", "USDC"),
        (1, "WETH", "USDT"),
        (1, "WBTC", "WETH"),
        (16, "SOL", "USDC"),
        (199, "WETH", "USDC"),
    ]
    for chain, a, b in expected:
        assert (chain, frozenset((a, b))) in pairs, (chain, a, b)
    bsc = {p.dex for p in world.pools if p.chain == 14}
    assert "pancakeswap-v2" in bsc
    # The PancakeSwap USDT/WBNB pair at its real address: USDT sorts first.
    pair = world.pool(14, "0x16b9a82891338f9ba80e2d6970fdda79d1eb0dae")
    assert symbol_of(world, 14, pair.token0) == "USDT"
    assert pair.fee_bps == 25


def test_pools_are_consistent(world: DexWorld) -> None:
    for p in [*world.pools, *(m.target for m in world.migrations)]:
        assert p.token0 != p.token1
        world.token(p.chain, p.token0)
        world.token(p.chain, p.token1)
        assert p.fee_bps == FEE_BPS[p.dex]
        assert p.activity > 0
        if p.chain != 16:
            assert p.token0 < p.token1  # Uniswap-style pairs sort their tokens
        memes = [t for t in (p.token0, p.token1) if world.token(p.chain, t).cmc_id is None]
        if memes:
            assert 1_000 <= p.depth_usd <= 1_000_000  # memes are thin
        else:
            assert p.depth_usd >= 1_000_000  # majors are deep


def test_every_meme_trades_against_the_wrapped_native_coin(world: DexWorld) -> None:
    for chain in world.chains:
        wrapped = next(
            r.address
            for r in REFERENCE_TOKENS
            if r.chain == chain and r.cmc_id == NATIVE[chain][1] and r.quote_rank == 1
        )
        several = 0
        for meme in world.memes(chain):
            pools = world.pools_of(chain, meme.address)
            assert any(wrapped in (p.token0, p.token1) for p in pools)
            several += len(pools) > 1
        assert several >= 1  # some memes also trade against a stablecoin


def test_wallets_are_mostly_untagged(world: DexWorld) -> None:
    for chain in world.chains:
        wallets = world.wallets_on(chain)
        counts = Counter(tag for w in wallets for tag in w.tags)
        assert set(counts) == set(TAGS)
        assert sum(1 for w in wallets if not w.tags) > 0.7 * len(wallets)
        assert counts["dev"] == sum(t.dev_known for t in world.memes(chain))
        assert counts["whale"] < counts["bot"] * 3
        assert world.exchanges[chain] in {w.address for w in wallets if not w.tags}
        # The first bot is the most active wallet (the arbitrageur): it leads the list.
        assert next(w for w in wallets if "bot" in w.tags).tags[0] == "bot"


def test_busiest_token_is_the_meme_with_the_most_expected_swaps(world: DexWorld) -> None:
    for chain in world.chains:
        busiest = world.busiest_token(chain)
        assert busiest.cmc_id is None
        assert busiest.fresh

        def rate(address: str, chain: int = chain) -> float:
            return sum(p.activity for p in world.pools_of(chain, address))

        others = [rate(t.address) for t in world.memes(chain) if t != busiest]
        assert rate(busiest.address) > 2 * max(others)
        # Busier than any pool of two majors, too.
        majors = [
            p.activity
            for p in world.pools_on(chain)
            if world.token(chain, p.token0).is_reference
            and world.token(chain, p.token1).is_reference
        ]
        assert rate(busiest.address) > max(majors)


def test_expected_activity_is_a_few_swaps_per_second(world: DexWorld) -> None:
    total = sum(p.activity for p in world.pools)
    assert 2.0 < total < 6.0


def test_lookups(world: DexWorld) -> None:
    meme = world.busiest_token(16)
    assert world.token(16, meme.address) is meme
    assert world.find_token(16, meme.address) is meme
    assert world.find_token(14, meme.address) is None
    with pytest.raises(KeyError):
        world.token(14, meme.address)
    pool = world.pools_of(16, meme.address)[0]
    assert world.pool(16, pool.address) is pool
    assert world.find_pool(16, "nope") is None
    target = world.migrations[0].target
    assert world.pool(target.chain, target.address) is target
    assert target not in world.pools  # created when the migration happens
    wallet = world.wallets[5]
    assert world.wallet(wallet.chain, wallet.address) is wallet
    with pytest.raises(KeyError):
        world.wallet(wallet.chain, "0x" + "0" * 40)
    assert world.reference(14, "WBNB").address == "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c"
    with pytest.raises(KeyError):
        world.reference(16, "WBNB")
    assert all("whale" in w.tags for w in world.tagged(1, "whale"))
    with pytest.raises(KeyError):
        world.busiest_token(137)


def test_each_chain_plans_one_migration_of_a_main_pool(world: DexWorld) -> None:
    assert sorted(m.chain for m in world.migrations) == sorted(world.chains)
    for m in world.migrations:
        source = world.pool(m.chain, m.source)
        assert m.token in (source.token0, source.token1)
        assert {m.target.token0, m.target.token1} == {source.token0, source.token1}
        assert m.target.dex != source.dex
        assert m.token != world.busiest_token(m.chain).address
        assert 60_000 <= m.after_ms <= 15 * 60_000
