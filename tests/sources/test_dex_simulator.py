"""DexSimulator: seeded raw DEX events that keep exact books.

Most checks replay the emitted events on their own (transfers into balances,
liquidity and swaps into reserves) and compare with what the simulator says,
so they hold for any consumer that reads the events the way a chain reads.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec
import pytest

from cmcstream.engine.events import (
    DexEvent,
    LiquidityChanged,
    NativeBalanceChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
    WalletLabeled,
)
from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.sources.simulator.dex import (
    CHAIN_CLOCKS,
    DEFAULT_PRICES,
    DexSimulator,
)
from cmcstream.sources.simulator.dex_world import B58_ALPHABET, DexWorld

NOW = 1_778_663_880_111  # not on any tick or block boundary
HOUR = 3_600_000
ANCHOR_TS = 1_778_659_200_000
WBNB_USDT = "0x16b9a82891338f9ba80e2d6970fdda79d1eb0dae"
EVM_TX = re.compile(r"^0x[0-9a-f]{64}$")
REF_PRICE = {(r.chain, r.address): r.cmc_id for r in REFERENCE_TOKENS}


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        n = n * 58 + B58_ALPHABET.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def bnb_price(t_ms: int) -> float:
    """BNB swings ±3 % over 40 minutes: the pools must follow it."""
    return 640.0 * (1.0 + 0.03 * math.sin(2 * math.pi * (t_ms - NOW) / 2_400_000))


def prices_at(t_ms: int) -> dict[int, float]:
    return {**DEFAULT_PRICES, 1839: bnb_price(t_ms)}


def fee_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """x·y=k with the fee taken from the amount in (Uniswap V2), written out again here."""
    with_fee = amount_in * (10_000 - fee_bps)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


def encoded(events: Iterable[DexEvent]) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]


def run_steps(sim: DexSimulator, times: Iterable[int], constant: bool = True) -> list[DexEvent]:
    out: list[DexEvent] = []
    for t in times:
        out += sim.step(t, DEFAULT_PRICES if constant else prices_at(t))
    return out


@dataclass
class Hour:
    world: DexWorld
    sim: DexSimulator
    genesis: list[DexEvent]
    events: list[DexEvent]
    pending: list[DexEvent] = field(default_factory=list)  # executed, stamped after the end
    pool_prices: list[tuple[int, float, float]] = field(default_factory=list)  # t, pool, market


@pytest.fixture(scope="module")
def hour() -> Hour:
    """One simulated hour of the default world, stepped every second, BNB moving."""
    world = DexWorld.build(0)
    sim = DexSimulator(world, seed=1)
    genesis = list(sim.genesis(NOW, prices_at(NOW)))
    run = Hour(world, sim, genesis, [])
    for k in range(1, 3601):
        t = NOW + k * 1000
        run.events += sim.step(t, prices_at(t))
        if k % 60 == 0:
            r0, r1 = sim.reserves(14, WBNB_USDT)  # USDT, WBNB (both 18 decimals)
            run.pool_prices.append((t, r0 / r1, bnb_price(t)))
    run.pending = sim.pending()
    return run


def books(run: Hour) -> list[DexEvent]:
    """Every event the simulator's books include."""
    return [*run.genesis, *run.events, *run.pending]


# -- determinism --------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_events() -> None:
    world = DexWorld.build(2)
    a, b = DexSimulator(world, seed=5), DexSimulator(world, seed=5)
    assert encoded(a.genesis(NOW, DEFAULT_PRICES)) == encoded(b.genesis(NOW, DEFAULT_PRICES))
    times = [NOW + k * 1000 for k in range(1, 121)]
    assert encoded(run_steps(a, times)) == encoded(run_steps(b, times))


def test_a_different_seed_gives_different_events() -> None:
    world = DexWorld.build(2)
    a, b = DexSimulator(world, seed=5), DexSimulator(world, seed=6)
    list(a.genesis(NOW, DEFAULT_PRICES))
    list(b.genesis(NOW, DEFAULT_PRICES))
    times = [NOW + k * 1000 for k in range(1, 61)]
    assert encoded(run_steps(a, times)) != encoded(run_steps(b, times))


def test_genesis_restarts_the_simulation() -> None:
    sim = DexSimulator(DexWorld.build(2), seed=5)
    first = encoded(sim.genesis(NOW, DEFAULT_PRICES))
    before = encoded(run_steps(sim, [NOW + 30_000]))
    assert encoded(sim.genesis(NOW, DEFAULT_PRICES)) == first
    assert encoded(run_steps(sim, [NOW + 30_000])) == before


def test_the_stream_does_not_depend_on_how_often_step_is_called() -> None:
    world = DexWorld.build(4)
    end = NOW + 300_000
    streams = []
    for times in (
        range(NOW + 1000, end + 1, 1000),  # every second
        range(NOW + 60_000, end + 1, 60_000),  # every minute
        [NOW + 1, NOW + 450, NOW + 7_777, NOW + 7_777, NOW + 123_456, end],  # irregular
    ):
        sim = DexSimulator(world, seed=9)
        list(sim.genesis(NOW, DEFAULT_PRICES))
        streams.append(encoded(run_steps(sim, times)))
    assert len(streams[0]) > 500
    assert streams[0] == streams[1] == streams[2]


def test_step_needs_genesis_and_a_later_time() -> None:
    sim = DexSimulator(DexWorld.build(0))
    with pytest.raises(RuntimeError, match="genesis"):
        sim.step(NOW, DEFAULT_PRICES)
    list(sim.genesis(NOW, DEFAULT_PRICES))
    assert list(sim.step(NOW, DEFAULT_PRICES)) == []
    assert list(sim.step(NOW - 5000, DEFAULT_PRICES)) == []


def test_activity_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="activity"):
        DexSimulator(DexWorld.build(0), activity=-1.0)


def test_missing_prices_fall_back_to_defaults() -> None:
    sim = DexSimulator(DexWorld.build(0))
    genesis = list(sim.genesis(NOW, {}))
    assert any(isinstance(e, Swap) for e in sim.step(NOW + 120_000, {}))
    assert sum(isinstance(e, PoolCreated) for e in genesis) == len(sim.world.pools)
    r0, r1 = sim.reserves(14, WBNB_USDT)
    assert r0 / r1 == pytest.approx(DEFAULT_PRICES[1839], rel=0.005)  # within the fee band


# -- genesis ------------------------------------------------------------------------------------


def test_genesis_lists_labels_and_funds_everything(hour: Hour) -> None:
    world, genesis = hour.world, hour.genesis
    listed = {(e.chain, e.address): e for e in genesis if isinstance(e, TokenListed)}
    assert set(listed) == {(t.chain, t.address) for t in world.tokens}
    for t in world.tokens:
        e = listed[(t.chain, t.address)]
        # A listing may lack the supply (0) or the creator (None), as real ones do.
        assert (e.symbol, e.decimals, e.total_supply, e.creator) == (
            t.symbol,
            t.decimals,
            t.total_supply if t.supply_known else 0,
            t.creator if t.dev_known else None,
        )
    labels = {(e.chain, e.wallet): e.tags for e in genesis if isinstance(e, WalletLabeled)}
    assert labels == {(w.chain, w.address): w.tags for w in world.wallets if w.tags}
    natives = {
        (e.chain, e.wallet): e.balance for e in genesis if isinstance(e, NativeBalanceChanged)
    }
    assert set(natives) == {(w.chain, w.address) for w in world.wallets}
    assert all(b > 0 for b in natives.values())
    # Realistic balances: untagged wallets hold tens to thousands of USD of native coin.
    untagged = [
        natives[(w.chain, w.address)] / 1e18 * 640.0
        for w in world.wallets_on(14)
        if not w.tags and w.address != world.exchanges[14]
    ]
    assert 30 < statistics.median(untagged) < 2_000


def test_genesis_comes_in_a_valid_order(hour: Hour) -> None:
    listed: set[tuple[int, str]] = set()
    created: set[tuple[int, str]] = set()
    for i, e in enumerate(hour.genesis):
        if isinstance(e, TokenListed):
            listed.add((e.chain, e.address))
        elif isinstance(e, Transfer):
            assert (e.chain, e.token) in listed
        elif isinstance(e, PoolCreated):
            assert (e.chain, e.token0) in listed
            assert (e.chain, e.token1) in listed
            created.add((e.chain, e.pool))
        elif isinstance(e, LiquidityChanged):
            assert (e.chain, e.pool) in created
            assert e.action == "add"
            # Both tokens went from the provider to the pool, in the same transaction.
            before = hour.genesis[i - 2 : i]
            assert all(
                isinstance(t, Transfer)
                and t.tx == e.tx
                and t.sender == e.provider
                and t.receiver == e.pool
                for t in before
            )
            assert [t.amount for t in before if isinstance(t, Transfer)] == [e.amount0, e.amount1]
    # One block per chain, at or before the start.
    blocks = {(e.chain, e.block, e.ts) for e in hour.genesis if isinstance(e, Transfer)}
    assert len(blocks) == 4
    assert all(ts <= NOW for _, _, ts in blocks)


def test_every_pool_has_reserves_after_genesis() -> None:
    world = DexWorld.build(0)
    sim = DexSimulator(world, seed=1)
    genesis = list(sim.genesis(NOW, DEFAULT_PRICES))
    reserves = replay_reserves(genesis)
    for p in world.pools:
        r0, r1 = sim.reserves(p.chain, p.address)
        assert r0 > 0
        assert r1 > 0
        assert reserves[(p.chain, p.address)] == [r0, r1]
    # Pools are priced at the market; memes at their launch price.
    usdt, wbnb = sim.reserves(14, WBNB_USDT)
    assert usdt / wbnb == pytest.approx(DEFAULT_PRICES[1839], rel=1e-9)
    for chain in world.chains:
        meme = world.busiest_token(chain)
        for p in world.pools_of(chain, meme.address):
            r0, r1 = sim.reserves(chain, p.address)
            quote = world.token(chain, p.token1 if p.token0 == meme.address else p.token0)
            assert quote.cmc_id is not None
            r_meme, r_quote = (r0, r1) if p.token0 == meme.address else (r1, r0)
            price = (r_quote / 10**quote.decimals * DEFAULT_PRICES[quote.cmc_id]) / (
                r_meme / 10**meme.decimals
            )
            assert price == pytest.approx(meme.price_usd, rel=1e-6)
            depth = 2 * r_quote / 10**quote.decimals * DEFAULT_PRICES[quote.cmc_id]
            assert 1_000 < depth < 1_000_000  # thin
    deep = 2 * usdt / 1e18
    assert deep > 5_000_000  # deep


def test_meme_supply_is_minted_to_its_dev_and_spread_heavy_tailed(hour: Hour) -> None:
    world = hour.world
    for meme in world.memes(14):
        moves = [e for e in hour.genesis if isinstance(e, Transfer) and e.token == meme.address]
        mint = moves[0]
        assert (mint.sender, mint.receiver, mint.amount) == (None, meme.creator, meme.total_supply)
        assert all(m.sender is not None for m in moves[1:])
        balances: Counter[str] = Counter()
        for m in moves:
            if m.sender is not None:
                balances[m.sender] -= m.amount
            if m.receiver is not None:
                balances[m.receiver] += m.amount
        pools = {p.address for p in world.pools_of(14, meme.address)}
        holders = {w: b for w, b in balances.items() if b > 0 and w not in pools}
        assert len(holders) >= 20
        dev_share = holders[meme.creator] / meme.total_supply
        assert 0.01 < dev_share < 0.15
        amounts = sorted(holders.values())
        assert amounts[-1] > 10 * statistics.median(amounts)  # a few hold a lot
        whales = {w.address for w in world.tagged(14, "whale")}
        assert sum(b for w, b in holders.items() if w in whales) > 0.1 * meme.total_supply


# -- the books ----------------------------------------------------------------------------------


def replay_reserves(events: Iterable[DexEvent]) -> dict[tuple[int, str], list[int]]:
    """Reserves implied by pool creations, liquidity and swaps; checks every swap's amount out."""
    reserves: dict[tuple[int, str], list[int]] = {}
    pools: dict[tuple[int, str], PoolCreated] = {}
    for e in events:
        if isinstance(e, PoolCreated):
            pools[(e.chain, e.pool)] = e
            reserves[(e.chain, e.pool)] = [0, 0]
        elif isinstance(e, LiquidityChanged):
            r = reserves[(e.chain, e.pool)]
            sign = -1 if e.action == "remove" else 1
            r[0] += sign * e.amount0
            r[1] += sign * e.amount1
            assert r[0] >= 0
            assert r[1] >= 0
        elif isinstance(e, Swap):
            pool = pools[(e.chain, e.pool)]
            r = reserves[(e.chain, e.pool)]
            i = 0 if e.token_in == pool.token0 else 1
            assert {e.token_in, e.token_out} == {pool.token0, pool.token1}
            assert e.amount_in > 0
            assert e.amount_out == fee_out(e.amount_in, r[i], r[1 - i], pool.fee_bps)
            r[i] += e.amount_in
            r[1 - i] -= e.amount_out
            assert r[1 - i] > 0
    return reserves


def test_every_swap_follows_the_constant_product_with_fee(hour: Hour) -> None:
    reserves = replay_reserves(books(hour))
    for (chain, pool), r in reserves.items():
        assert tuple(r) == hour.sim.reserves(chain, pool)


def test_transfers_conserve_every_balance(hour: Hour) -> None:
    world, sim = hour.world, hour.sim
    balances: dict[tuple[int, str, str], int] = defaultdict(int)
    for e in books(hour):
        if isinstance(e, Transfer):
            assert e.amount > 0
            if e.sender is not None:
                key = (e.chain, e.token, e.sender)
                balances[key] -= e.amount
                assert balances[key] >= 0, e
            if e.receiver is not None:
                balances[(e.chain, e.token, e.receiver)] += e.amount
    # A pool holds exactly its reserves.
    for p in [*world.pools, *(m.target for m in world.migrations)]:
        r0, r1 = sim.reserves(p.chain, p.address)
        assert balances[(p.chain, p.token0, p.address)] == r0
        assert balances[(p.chain, p.token1, p.address)] == r1
    # Wallets hold what the simulator says they hold.
    for w in world.wallets[::7]:
        for t in world.tokens_on(w.chain):
            assert balances[(w.chain, t.address, w.address)] == sim.balance(
                w.chain, t.address, w.address
            )


def test_native_balances_never_go_negative_and_senders_pay_gas(hour: Hour) -> None:
    last: dict[tuple[int, str], int] = {}
    for e in books(hour):
        if isinstance(e, NativeBalanceChanged):
            assert e.balance >= 0
            last[(e.chain, e.wallet)] = e.balance
    for (chain, wallet), balance in last.items():
        assert hour.sim.native_balance(chain, wallet) == balance
    # Each swap transaction ends with its sender's balance after gas.
    events = [*hour.events, *hour.pending]
    for i, e in enumerate(events):
        if isinstance(e, Swap) and not (
            isinstance(events[i + 1], (Transfer, Swap)) and events[i + 1].tx == e.tx  # type: ignore[union-attr]
        ):
            gas = events[i + 1]
            assert isinstance(gas, NativeBalanceChanged)
            assert (gas.chain, gas.block, gas.wallet) == (e.chain, e.block, e.sender)


# -- the shape of the stream --------------------------------------------------------------------


def test_events_come_in_time_order_with_realistic_blocks(hour: Hour) -> None:
    events = hour.events
    assert events
    last_ts = NOW
    last_block: dict[int, int] = {}
    for e in events:
        assert not isinstance(e, (TokenListed, WalletLabeled))
        ts: int = e.ts  # type: ignore[union-attr]
        block: int = e.block  # type: ignore[union-attr]
        assert ts >= last_ts
        last_ts = ts
        assert NOW < ts <= NOW + HOUR
        assert block >= last_block.get(e.chain, 0)
        last_block[e.chain] = block
        block_ms, height = CHAIN_CLOCKS[e.chain]
        assert (ts - ANCHOR_TS) % block_ms == 0
        assert block == height + (ts - ANCHOR_TS) // block_ms
    # Heights near today's: Ethereum ~23.9M, BSC ~98M, Solana ~417M, Base ~38M.
    assert 23_800_000 < last_block[1] < 24_000_000
    assert 97_500_000 < last_block[14] < 98_500_000
    assert 416_500_000 < last_block[16] < 417_500_000
    assert 37_800_000 < last_block[199] < 38_200_000


def test_transactions_and_locators(hour: Hour) -> None:
    located = [e for e in hour.events if isinstance(e, (Transfer, Swap, LiquidityChanged))]
    seen_tx: set[str] = set()
    prev_tx = None
    prev_index = -1
    block_logs: dict[tuple[int, int], int] = {}
    for e in located:
        if e.chain == 16:
            assert e.log_index is None
            assert e.instruction_index is not None
            assert len(e.tx) == 88
            assert len(b58decode(e.tx)) == 64
            index = e.instruction_index
        else:
            assert e.instruction_index is None
            assert e.log_index is not None
            assert EVM_TX.match(e.tx)
            index = e.log_index
            # Log indexes count the logs of a block.
            key = (e.chain, e.block)
            assert index > block_logs.get(key, -1)
            block_logs[key] = index
        if e.tx == prev_tx:
            assert index > prev_index  # increasing within a transaction
        else:
            assert e.tx not in seen_tx  # a transaction's events are contiguous
            seen_tx.add(e.tx)
        prev_tx, prev_index = e.tx, index


def test_snipers_after_a_migration_keep_time_order() -> None:
    # Snipers scheduled from inside a tick (after a migration) run in a later
    # tick; with this seed they once ran a tick late and out of order.
    world = DexWorld.build(1)
    sim = DexSimulator(world, seed=2)
    list(sim.genesis(NOW, prices_at(NOW)))
    end = NOW + max(m.after_ms for m in world.migrations) + 30_000
    events = run_steps(sim, range(NOW + 1000, end, 1000), constant=False)
    assert sum(isinstance(e, PoolCreated) for e in events) == len(world.migrations)
    last_ts = 0
    logs: dict[tuple[int, int], int] = {}
    for e in events:
        assert e.ts >= last_ts  # type: ignore[union-attr]
        last_ts = e.ts  # type: ignore[union-attr]
        if isinstance(e, (Transfer, Swap, LiquidityChanged)) and e.log_index is not None:
            assert e.log_index > logs.get((e.chain, e.block), -1)
            logs[(e.chain, e.block)] = e.log_index


def test_each_swap_moves_its_tokens_first(hour: Hour) -> None:
    events = hour.events
    routed = 0
    for i, e in enumerate(events):
        if not isinstance(e, Swap):
            continue
        t_in, t_out = events[i - 2], events[i - 1]
        assert isinstance(t_in, Transfer)
        assert isinstance(t_out, Transfer)
        assert t_in.tx == t_out.tx == e.tx
        assert (t_in.token, t_in.sender, t_in.receiver, t_in.amount) == (
            e.token_in,
            e.trader,
            e.pool,
            e.amount_in,
        )
        assert (t_out.token, t_out.sender, t_out.receiver, t_out.amount) == (
            e.token_out,
            e.pool,
            e.trader,
            e.amount_out,
        )
        if e.sender != e.trader:
            routed += 1
            assert "bot" in hour.world.wallet(e.chain, e.sender).tags  # a relayer
    assert routed > 100


# -- behaviour ----------------------------------------------------------------------------------


def swaps(hour: Hour) -> list[Swap]:
    return [e for e in hour.events if isinstance(e, Swap)]


def usd_value(world: DexWorld, e: Swap, prices: Mapping[int, float]) -> float:
    """USD value of a swap through its reference side."""
    for token, amount in ((e.token_in, e.amount_in), (e.token_out, e.amount_out)):
        cmc = REF_PRICE.get((e.chain, token))
        if cmc is not None:
            return amount / 10 ** world.token(e.chain, token).decimals * prices[cmc]
    raise AssertionError("every pool has a reference token")


def test_rates_are_a_few_swaps_per_second_with_bursts(hour: Hour) -> None:
    times = [e.ts for e in swaps(hour)]
    per_second = len(times) / 3600
    assert 2.5 < per_second < 8.0
    # Bursts: the busiest second of the hour (outside Ethereum, whose 12 s blocks
    # stamp a block's swaps with one time) is well above the mean...
    seconds = Counter((e.ts - NOW) // 1000 for e in swaps(hour) if e.chain != 1)
    assert max(seconds.values()) > 3 * per_second
    # ...and a token's busiest ten seconds, several times its own mean.
    for chain in hour.world.chains:
        busiest = hour.world.busiest_token(chain).address
        its = [
            e.ts for e in swaps(hour) if e.chain == chain and busiest in (e.token_in, e.token_out)
        ]
        windows = Counter((t - NOW) // 10_000 for t in its)
        assert max(windows.values()) > 3 * len(its) / 360
    by_chain = Counter(e.chain for e in swaps(hour))
    assert by_chain[14] > by_chain[1]  # BSC trades more than Ethereum
    assert by_chain[16] > by_chain[1]


def test_the_busiest_token_is_the_busiest(hour: Hour) -> None:
    world = hour.world
    counts: Counter[tuple[int, str]] = Counter()
    memes = {(t.chain, t.address) for t in world.tokens if t.cmc_id is None}
    for e in swaps(hour):
        for token in (e.token_in, e.token_out):
            if (e.chain, token) in memes:
                counts[(e.chain, token)] += 1
    for chain in world.chains:
        busiest = world.busiest_token(chain).address
        others = [n for (c, a), n in counts.items() if c == chain and a != busiest]
        assert counts[(chain, busiest)] > 1.5 * max(others)


def test_the_wbnb_usdt_pool_tracks_the_bnb_price(hour: Hour) -> None:
    assert len(hour.pool_prices) == 60
    for _, pool, market in hour.pool_prices:
        assert pool == pytest.approx(market, rel=0.01)
    # It moved with the market (±3 %), not only stayed put.
    assert max(p for _, p, _ in hour.pool_prices) > 1.02 * min(p for _, p, _ in hour.pool_prices)


def test_tags_shape_the_trades(hour: Hour) -> None:
    world = hour.world
    by_tag: dict[str, list[float]] = defaultdict(list)
    for e in swaps(hour):
        tags = world.wallet(e.chain, e.trader).tags
        by_tag[tags[0] if tags else "untagged"].append(usd_value(world, e, prices_at(e.ts)))
    wallets = Counter(t for w in world.wallets for t in (w.tags[:1] or ("untagged",)))
    # Bots trade often and small; whales rarely and big.
    per_bot = len(by_tag["bot"]) / wallets["bot"]
    per_whale = len(by_tag["whale"]) / wallets["whale"]
    assert per_bot > 10 * per_whale
    assert statistics.median(by_tag["whale"]) > 20 * statistics.median(by_tag["bot"])
    assert statistics.median(by_tag["whale"]) > 10 * statistics.median(by_tag["untagged"])
    for tag in ("smart_money", "kol", "sniper", "bundler", "dev"):
        assert by_tag[tag], tag
    # Sizes are heavy-tailed.
    retail = sorted(by_tag["untagged"])
    assert retail[int(0.99 * len(retail))] > 20 * statistics.median(retail)


def test_snipers_buy_the_fresh_token_first(hour: Hour) -> None:
    world = hour.world
    for chain in world.chains:
        fresh = world.busiest_token(chain).address
        snipers = {w.address for w in world.tagged(chain, "sniper")}
        early = [
            e
            for e in swaps(hour)
            if e.chain == chain and e.token_out == fresh and e.ts <= NOW + 20_000
        ]
        assert sum(e.trader in snipers for e in early) >= 2


def test_devs_dump_now_and_then(hour: Hour) -> None:
    world = hour.world
    dumps = [
        e
        for e in swaps(hour)
        if (token := world.find_token(e.chain, e.token_in)) is not None
        and token.creator == e.trader
    ]
    assert dumps


def test_liquidity_moves_and_one_pool_migrates(hour: Hour) -> None:
    world = hour.world
    events = hour.events
    actions = Counter(e.action for e in events if isinstance(e, LiquidityChanged))
    assert actions["add"] > 10
    assert actions["remove"] > 5
    assert actions["migrate"] == len(world.migrations)
    for m in world.migrations:
        created = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, PoolCreated) and e.pool == m.target.address
        )
        tx = events[created]
        assert isinstance(tx, PoolCreated)
        assert tx.ts == pytest.approx(NOW + m.after_ms, abs=12_000)
        same = [e for e in events[created:] if getattr(e, "tx", None) == tx.tx]
        liquidity = [e for e in same if isinstance(e, LiquidityChanged)]
        assert [(e.pool, e.action) for e in liquidity] == [
            (m.source, "remove"),
            (m.target.address, "migrate"),
        ]
        assert all(e.provider == world.token(m.chain, m.token).creator for e in liquidity)
        moved = [e for e in same if isinstance(e, Transfer)]
        assert len(moved) == 4  # out of the old pool, into the new one
        # The old pool takes no trades after the migration; the new one does.
        after = [e for e in swaps(hour) if e.ts > tx.ts]
        assert not any(e.pool == m.source for e in after)
        assert any(e.pool == m.target.address for e in after)
        assert not hour.sim.is_active(m.chain, m.source)
        assert hour.sim.is_active(m.chain, m.target.address)


def test_plain_transfers_and_deposits_happen(hour: Hour) -> None:
    pools = {(p.chain, p.address) for p in hour.world.pools} | {
        (m.chain, m.target.address) for m in hour.world.migrations
    }
    exchanges = set(hour.world.exchanges.values())
    plain = [
        e
        for e in hour.events
        if isinstance(e, Transfer)
        and e.sender is not None
        and e.receiver is not None
        and (e.chain, e.sender) not in pools
        and (e.chain, e.receiver) not in pools
    ]
    assert sum(e.sender in exchanges for e in plain) > 50  # deposits from the exchange
    assert sum(e.sender not in exchanges for e in plain) > 50  # wallet to wallet


def test_some_swaps_are_dust_and_some_are_outliers(hour: Hour) -> None:
    world = hour.world
    values = [usd_value(world, e, prices_at(e.ts)) for e in swaps(hour)]
    assert sum(v < 0.01 for v in values) > 10
    # Outliers: a swap priced several times off the token's price in its other pools.
    reserves: dict[tuple[int, str], list[int]] = {}
    pools: dict[tuple[int, str], PoolCreated] = {}
    outliers = 0
    for e in [*hour.genesis, *hour.events]:
        if isinstance(e, PoolCreated):
            pools[(e.chain, e.pool)] = e
            reserves[(e.chain, e.pool)] = [0, 0]
        elif isinstance(e, LiquidityChanged):
            sign = -1 if e.action == "remove" else 1
            r = reserves[(e.chain, e.pool)]
            r[0] += sign * e.amount0
            r[1] += sign * e.amount1
        elif isinstance(e, Swap):
            pool = pools[(e.chain, e.pool)]
            meme = next(
                (t for t in (pool.token0, pool.token1) if (e.chain, t) not in REF_PRICE), None
            )
            if meme is not None:
                others = [
                    mid_price(world, pools[k], reserves[k], meme, prices_at(e.ts))
                    for k in pools
                    if k != (e.chain, e.pool) and meme in (pools[k].token0, pools[k].token1)
                ]
                paid = execution_price(world, e, meme, prices_at(e.ts))
                if others and paid > 3 * max(others):
                    outliers += 1
            r = reserves[(e.chain, e.pool)]
            i = 0 if e.token_in == pool.token0 else 1
            r[i] += e.amount_in
            r[1 - i] -= e.amount_out
    assert outliers >= 1


def mid_price(
    world: DexWorld, pool: PoolCreated, r: list[int], meme: str, prices: Mapping[int, float]
) -> float:
    quote = pool.token1 if pool.token0 == meme else pool.token0
    r_meme, r_quote = (r[0], r[1]) if pool.token0 == meme else (r[1], r[0])
    if r_meme == 0:
        return 0.0
    q, m = world.token(pool.chain, quote), world.token(pool.chain, meme)
    return (r_quote / 10**q.decimals * prices[REF_PRICE[(pool.chain, quote)]]) / (
        r_meme / 10**m.decimals
    )


def execution_price(world: DexWorld, e: Swap, meme: str, prices: Mapping[int, float]) -> float:
    if e.token_out == meme:
        quote, q_amount, m_amount = e.token_in, e.amount_in, e.amount_out
    else:
        quote, q_amount, m_amount = e.token_out, e.amount_out, e.amount_in
    q, m = world.token(e.chain, quote), world.token(e.chain, meme)
    return (q_amount / 10**q.decimals * prices[REF_PRICE[(e.chain, quote)]]) / (
        m_amount / 10**m.decimals
    )


# -- activity -----------------------------------------------------------------------------------


def test_activity_scales_the_swap_rate() -> None:
    world = DexWorld.build(0)
    counts = []
    for activity in (1.0, 10.0):
        sim = DexSimulator(world, seed=3, activity=activity)
        list(sim.genesis(NOW, DEFAULT_PRICES))
        run_steps(sim, range(NOW + 10_000, NOW + 600_001, 10_000))
        counts.append(sim.swaps)
    assert 5 < counts[1] / counts[0] < 15


def test_a_swap_storm_keeps_the_books() -> None:
    world = DexWorld.build(0, memes_per_chain=3, wallets_per_chain=100)
    sim = DexSimulator(world, seed=3, activity=1000.0)
    genesis = list(sim.genesis(NOW, DEFAULT_PRICES))
    events = run_steps(sim, range(NOW + 500, NOW + 4_001, 500))
    assert sim.swaps > 4 * 1000  # thousands of swaps per simulated second
    everything = [*genesis, *events, *sim.pending()]
    for (chain, pool), r in replay_reserves(everything).items():
        assert tuple(r) == sim.reserves(chain, pool)
        assert min(r) > 0
    held: dict[tuple[int, str, str], int] = defaultdict(int)
    for e in everything:
        if isinstance(e, Transfer):
            if e.sender is not None:
                held[(e.chain, e.token, e.sender)] -= e.amount
                assert held[(e.chain, e.token, e.sender)] >= 0
            if e.receiver is not None:
                held[(e.chain, e.token, e.receiver)] += e.amount
