"""The on-chain engine on a small hand-made BSC world: every number checked by hand."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from cmcstream.engine.events import (
    LiquidityChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
)
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.protocol.channels import ChannelRegistry
from cmcstream.protocol.payloads import Kline, PoolMetric, TokenAggEvent, TokenMetric, Transaction

USDT = "0x55d398326f99059ff775485246999027b3197955"
WBNB = "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c"
MEME = "0x1111111111111111111111111111111111111111"
P_MAJOR = "0x2222222222222222222222222222222222222222"
P_MEME = "0x3333333333333333333333333333333333333333"
P_MEME2 = "0x4444444444444444444444444444444444444444"
DEV = "0x5555555555555555555555555555555555555555"
ALICE = "0x6666666666666666666666666666666666666666"
BOB = "0x7777777777777777777777777777777777777777"
E18 = 10**18
T0 = 1_789_999_200_000  # on an hour boundary
PRICES = {1839: 600.0, 825: 1.0}
REG = ChannelRegistry()


def world() -> OnchainEngine:
    engine = OnchainEngine(PRICES.get)
    events: list[Any] = [
        TokenListed(14, USDT, "USDT", "Tether USD", 18, 10**9 * E18),
        TokenListed(14, WBNB, "WBNB", "Wrapped BNB", 18, 10**6 * E18),
        TokenListed(14, MEME, "MEME", "Meme", 18, 10**9 * E18, creator=DEV),
        PoolCreated(14, 1, T0, "0xc1", P_MAJOR, "pancakeswap-v2", USDT, WBNB),
        LiquidityChanged(14, 1, T0, "0xa1", P_MAJOR, "add", DEV, DEV, 600_000 * E18, 1000 * E18, 1),
        PoolCreated(14, 1, T0, "0xc2", P_MEME, "pancakeswap-v2", MEME, WBNB),
        LiquidityChanged(14, 1, T0, "0xa2", P_MEME, "add", DEV, DEV, 10**6 * E18, 10 * E18, 2),
        PoolCreated(14, 1, T0, "0xc3", P_MEME2, "pancakeswap-v2", USDT, MEME),
        LiquidityChanged(14, 1, T0, "0xa3", P_MEME2, "add", DEV, DEV, 3000 * E18, 500_000 * E18, 3),
    ]
    for event in events:
        assert engine.apply(event) == []
    return engine


def watch(engine: OnchainEngine, channel: str, **params: Any) -> str:
    spec = REG.get(channel)
    assert spec is not None
    (sub,) = REG.normalize(spec, {"platform_id": 14, **params})
    engine.watch(sub, T0)
    return sub.topic


def buy_meme(wbnb_in: float, ts: int, trader: str = ALICE, log: int = 7) -> Swap:
    """A swap through P_MEME priced exactly as the pool would (x·y=k, 0.3 % fee)."""
    return Swap(14, 2, ts, f"0xt{ts}{trader[-2:]}", P_MEME, trader, trader, WBNB, MEME,
                int(wbnb_in * E18), 0, log)  # fmt: skip


def priced(engine: OnchainEngine, swap: Swap) -> Swap:
    pool = engine.pool(14, swap.pool)
    assert pool is not None
    r_in, r_out = (pool.r1, pool.r0) if swap.token_in == pool.t1.address else (pool.r0, pool.r1)
    fee_in = swap.amount_in * 997
    out = fee_in * r_out // (r_in * 1000 + fee_in)
    return Swap(**{**{f: getattr(swap, f) for f in swap.__struct_fields__}, "amount_out": out})


def test_transaction_payload_is_computed_from_the_swap() -> None:
    engine = world()
    meme_topic = watch(engine, "onchain@transaction", address=MEME)
    wbnb_topic = watch(engine, "onchain@transaction", address=WBNB)
    swap = priced(engine, buy_meme(1.0, T0 + 1000))
    updates = engine.apply(swap)
    assert [topic for topic, _ in updates] == [meme_topic, wbnb_topic]
    tx = updates[0][1]
    assert isinstance(tx, Transaction)
    assert updates[1][1] is tx  # one payload, two identities
    meme_out = swap.amount_out / E18
    assert (tx.pid, tx.tp, tx.pa, tx.t0a, tx.t1a, tx.t0s, tx.t1s) == (
        14, "buy", P_MEME, MEME, WBNB, "MEME", "WBNB",
    )  # fmt: skip
    assert (tx.a0, tx.a1) == (meme_out, 1.0)
    assert tx.vu == pytest.approx(600.0)
    assert tx.t1pu == pytest.approx(600.0)
    assert tx.t0pu == pytest.approx(600.0 / meme_out)
    assert tx.q == pytest.approx(tx.t0pu / tx.t1pu)
    assert (tx.qi, tx.tii, tx.ba) == (1, 1, MEME)
    assert (tx.f, tx.ma, tx.bh, tx.tx, tx.ts) == (ALICE, ALICE, 2, swap.tx, T0 + 1000)
    assert tx.lgid == 7
    assert (tx.ex, tx.txtp) == (False, 0)
    encoded = __import__("msgspec").json.encode(tx)
    assert b'"iix"' not in encoded
    # The pool's reserves moved exactly as the chain's would.
    pool = engine.pool(14, P_MEME)
    assert pool is not None
    assert (pool.r0, pool.r1) == (10**6 * E18 - swap.amount_out, 11 * E18)


def test_dust_and_outliers_are_excluded_from_aggregates() -> None:
    engine = world()
    topic = watch(engine, "onchain@transaction", address=MEME)
    kline = watch(engine, "onchain@kline", address=MEME, interval="1s")
    dust = priced(engine, buy_meme(1e-8, T0 + 100))
    [(_, tx)] = engine.apply(dust)
    assert (tx.ex, tx.txtp) == (True, 1)
    engine.apply(priced(engine, buy_meme(0.5, T0 + 200)))
    whale = priced(engine, buy_meme(200.0, T0 + 300))  # 20x the pool's WBNB: price far off
    [(_, tx)] = engine.apply(whale)
    assert (tx.ex, tx.txtp) == (True, 2)
    candles = [p for t, p in engine.advance(T0 + 1000) if t == kline]
    assert len(candles) == 1
    assert candles[0].vu == pytest.approx(300.0)  # only the 0.5 WBNB swap counts
    assert topic in engine.watched


def test_klines_close_on_interval_and_carry_empty_ones() -> None:
    engine = world()
    topic = watch(engine, "onchain@kline", address=MEME, interval="5s")
    prices = []
    for i, ts in enumerate([T0 + 500, T0 + 1500, T0 + 4999, T0 + 5000]):
        [_] = [engine.apply(priced(engine, buy_meme(0.1, ts, log=i)))]
        token = engine.token(14, MEME)
        assert token is not None
        prices.append(token.price)
    out = [p for t, p in engine.advance(T0 + 15_000) if t == topic]
    assert [k.ot for k in out] == [T0, T0 + 5000, T0 + 10_000]
    first, second, empty = out
    assert isinstance(first, Kline)
    assert (first.o, first.c) == (prices[0], prices[2])
    assert first.h == max(prices[:3])
    assert first.l == min(prices[:3])
    assert first.l <= min(first.o, first.c) <= max(first.o, first.c) <= first.h
    assert first.vu == pytest.approx(180.0)
    assert second.o == second.c == prices[3]
    assert (empty.o, empty.h, empty.l, empty.c, empty.vu) == (second.c,) * 4 + (0.0,)


def test_unique_traders_per_interval() -> None:
    engine = world()
    minute = watch(engine, "onchain@unique_trader", address=MEME, interval="1m")
    hourly = watch(engine, "onchain@unique_trader", address=MEME, interval="1h")
    trades = [(T0 + 1, ALICE), (T0 + 2, BOB), (T0 + 3, ALICE), (T0 + 60_000, BOB)]
    for i, (ts, who) in enumerate(trades):
        engine.apply(priced(engine, buy_meme(0.1, ts, trader=who, log=i)))
    closed = [(p.ot, p.ut) for t, p in engine.advance(T0 + 120_000) if t == minute]
    assert closed == [(T0, 2), (T0 + 60_000, 1)]
    hours = [(p.ot, p.ut) for t, p in engine.advance(T0 + 3_600_000) if t == hourly]
    assert hours == [(T0, 2)]


def test_token_and_pool_metrics_hold_their_invariants() -> None:
    engine = world()
    token_topic = watch(engine, "onchain@token_metric", address=MEME)
    pool_topic = watch(engine, "onchain@pool_metric", pool_address=P_MEME)
    ts = T0
    for i in range(30):
        ts += 7_000
        swap = buy_meme(0.05 * (1 + i % 3), ts, trader=ALICE if i % 2 else BOB, log=i)
        if i % 4 == 3:  # a sell: MEME in, WBNB out
            meme = engine.token(14, MEME)
            assert meme is not None
            swap = Swap(14, 3, ts, f"0xs{i}", P_MEME, BOB, BOB, MEME, WBNB, 3000 * E18, 0, i)
        engine.apply(priced(engine, swap))
    out = dict(engine.advance(ts + 1))
    metric = out[token_topic]
    assert isinstance(metric, TokenMetric)
    assert [w.win for w in metric.sts] == ["1m", "5m", "1h", "4h", "24h"]
    for w in metric.sts:
        assert w.txs == w.bc + w.sc
        assert w.vu == pytest.approx(w.bvu + w.svu)
        assert w.ut <= w.but + w.sut
        assert w.l is None or w.l <= w.h
    assert metric.mc == pytest.approx(metric.p * 1e9)
    pool = out[pool_topic]
    assert isinstance(pool, PoolMetric)
    windows = [pool.m5, pool.h1, pool.h4, pool.h24, pool.d7]
    for small, large in itertools.pairwise(windows):
        assert small is not None
        assert large is not None
        for field in ("bvn", "bvu", "svn", "svu", "ut", "but", "sut"):
            assert getattr(small, field) <= getattr(large, field) + 1e-9
    # Coalesced: nothing new, nothing pushed; one more swap, one more push after the period.
    assert engine.advance(ts + 2) == []
    engine.apply(priced(engine, buy_meme(0.1, ts + 3, log=99)))
    assert engine.advance(ts + 500) == []
    assert {t for t, _ in engine.advance(ts + 1001)} == {token_topic, pool_topic}


def test_aggregate_price_and_liquidity() -> None:
    engine = world()
    topic = watch(engine, "onchain@token_agg_event", address=MEME)
    [(_, agg)] = engine.apply(priced(engine, buy_meme(0.2, T0 + 10)))
    assert isinstance(agg, TokenAggEvent)
    meme = engine.token(14, MEME)
    assert meme is not None
    pool_prices = [engine.pool_price(p, meme) for p in meme.pools]
    assert min(pool_prices) <= agg.ap <= max(pool_prices)  # type: ignore[type-var, operator]
    assert agg.lu == pytest.approx(sum(engine.pool_liquidity(p) for p in meme.pools))  # type: ignore[misc]
    assert agg.p == engine.pool_price(engine.pool(14, P_MEME), meme)  # type: ignore[arg-type]
    assert math.isclose(agg.lu, 2 * 10.2 * 600 + 2 * 3000, rel_tol=0.02)  # two ~50/50 pools
    assert topic in engine.watched


def test_liquidity_events_and_solana_locators() -> None:
    engine = world()
    topic = watch(engine, "onchain@liquidity_event", address=MEME)
    add = LiquidityChanged(
        14, 5, T0 + 1, "0xl1", P_MEME, "add", ALICE, BOB, 1000 * E18, E18 // 100, 4
    )
    [(got_topic, event)] = engine.apply(add)
    assert got_topic == topic
    assert (event.tp, event.f, event.ma, event.pa, event.lgid) == ("add", ALICE, BOB, P_MEME, 4)
    assert event.a0 == 1000.0
    assert event.vu == pytest.approx(1000 * 0.006 + 0.01 * 600, rel=0.01)
    remove = LiquidityChanged(
        14, 6, T0 + 2, "0xl2", P_MEME, "remove", ALICE, BOB, 1000 * E18, E18 // 100, 9
    )
    assert engine.apply(remove)[0][1].tp == "remove"


def test_unknown_addresses_are_harmless() -> None:
    engine = world()
    topic = watch(engine, "onchain@kline", address="0x" + "9" * 40, interval="1m")
    assert (
        engine.apply(Swap(14, 1, T0, "0x1", "0x" + "8" * 40, ALICE, ALICE, WBNB, MEME, 1, 1)) == []
    )
    assert engine.apply(Transfer(14, 1, T0, "0x2", "0x" + "7" * 40, ALICE, BOB, 5)) == []
    assert [t for t, _ in engine.advance(T0 + 120_000) if t == topic] == []
    assert engine.statistics()["unknown"] >= 1


def trading(engine: OnchainEngine, count: int) -> list[Swap]:
    """Buys and sells of MEME through both its pools, several a second, two traders."""
    swaps = []
    for i in range(count):
        ts = T0 + 137 * i
        trader = ALICE if i % 3 else BOB
        if i % 4 == 3:
            swap = Swap(14, 3, ts, f"0xs{i}", P_MEME, trader, trader, MEME, WBNB, 2000 * E18, 0, i)
        elif i % 5 == 4:
            swap = Swap(14, 3, ts, f"0xu{i}", P_MEME2, trader, trader, USDT, MEME, 5 * E18, 0, i)
        else:
            swap = buy_meme(0.01 * (1 + i % 7), ts, trader=trader, log=i)
        swaps.append(priced(engine, swap))
    return swaps


def test_when_the_engine_is_read_changes_no_number() -> None:
    # Trades are folded a second at a time, and before every read: reading after each
    # swap (mid-second) or only at the end must give the same windows and candles.
    often, once = world(), world()
    topics = [
        watch(engine, "onchain@kline", address=MEME, interval="5s") for engine in (often, once)
    ]
    klines: list[list[Any]] = [[], []]
    for swap in trading(often, 200):
        often.apply(swap)
        once.apply(swap)
        klines[0] += [p for t, p in often.advance(swap.ts) if t == topics[0]]
        meme = often.token(14, MEME)
        assert meme is not None
        often.token_metric(meme, swap.ts)
    end = T0 + 200 * 137 + 10_000
    klines[0] += [p for t, p in often.advance(end) if t == topics[0]]
    klines[1] += [p for t, p in once.advance(end) if t == topics[1]]
    assert len(klines[0]) > 3
    assert klines[0] == klines[1]
    metrics = []
    for engine in (often, once):
        meme, pool = engine.token(14, MEME), engine.pool(14, P_MEME)
        assert meme is not None
        assert pool is not None
        metrics.append((engine.token_metric(meme, end), engine.pool_metric(pool, end)))
    assert metrics[0] == metrics[1]
    token_metric = metrics[0][0]
    assert token_metric.sts[0].txs > 0


def test_swaps_reach_a_topic_watched_before_its_token_was_listed() -> None:
    late = "0x" + "a" * 40
    engine = world()
    topic = watch(engine, "onchain@transaction", address=late)
    engine.apply(TokenListed(14, late, "LATE", "Late", 18, 10**9 * E18))
    engine.apply(PoolCreated(14, 1, T0, "0xc4", "0x" + "b" * 40, "pancakeswap-v2", late, WBNB))
    add = LiquidityChanged(14, 1, T0, "0xa4", "0x" + "b" * 40, "add", DEV, DEV, E18, E18, 1)
    engine.apply(add)
    swap = Swap(14, 2, T0 + 1, "0xt", "0x" + "b" * 40, BOB, BOB, WBNB, late, E18 // 10, 10**16)
    assert [t for t, _ in engine.apply(swap)] == [topic]
    spec = REG.get("onchain@transaction")
    assert spec is not None
    (sub,) = REG.normalize(spec, {"platform_id": 14, "address": late})
    engine.unwatch(sub)
    assert engine.apply(swap) == []


def test_holder_metrics_are_pushed_when_a_transfer_or_swap_touched_the_token() -> None:
    engine = world()
    topic = watch(engine, "onchain@holders_metrics", address=MEME)
    assert len([t for t, _ in engine.advance(T0) if t == topic]) == 5
    assert engine.advance(T0 + 5000) == []  # nothing happened to MEME
    engine.apply(Transfer(14, 2, T0 + 5001, "0x9", MEME, DEV, ALICE, E18))
    assert len(engine.advance(T0 + 5002)) == 5
    engine.apply(priced(engine, buy_meme(0.1, T0 + 5100)))
    assert engine.advance(T0 + 5500) == []  # within the period: held back, not dropped
    assert len(engine.advance(T0 + 6002)) == 5
    engine.apply(TokenListed(14, MEME, "MEME", "Meme", 18, 10**9 * E18, creator=DEV))
    assert engine.advance(T0 + 9000) == []  # restating a listing moves no holder


def test_apply_many_is_apply_event_by_event() -> None:
    one, many = world(), world()
    for engine in (one, many):
        for channel in ("onchain@transaction", "onchain@token_agg_event"):
            watch(engine, channel, address=MEME)
    swaps = trading(one, 50)
    singly = [update for swap in swaps for update in one.apply(swap)]
    batched = many.apply_many(swaps[:7]) + many.apply_many(swaps[7:]) + many.apply_many([])
    assert len(singly) >= 100
    assert batched == singly


def test_a_front_run_swap_moves_no_aggregate_price() -> None:
    # An outlier (txtp 2) moves the pool's reserves, as on chain, but no price: the
    # aggregate, the pool price and the liquidity of its push are those before it.
    engine = world()
    agg_topic = watch(engine, "onchain@token_agg_event", address=MEME)
    tx_topic = watch(engine, "onchain@transaction", address=MEME)
    meme = engine.token(14, MEME)
    assert meme is not None
    pushed = dict(engine.apply(priced(engine, buy_meme(0.2, T0 + 10))))
    before = pushed[agg_topic]
    assert isinstance(before, TokenAggEvent)
    front_run = priced(engine, buy_meme(200.0, T0 + 20, trader=BOB, log=8))
    pushed = dict(engine.apply(front_run))
    assert (pushed[tx_topic].ex, pushed[tx_topic].txtp) == (True, 2)
    during = pushed[agg_topic]  # still pushed: one token_agg_event per swap
    assert isinstance(during, TokenAggEvent)
    assert (during.ap, during.p, during.lu, during.ts) == (before.ap, before.p, before.lu, T0 + 20)
    assert engine.usd(meme) == meme.price
    # The reserves did move: the swap that sells the bag back trades from them, and the
    # next included swap prices the pool from where the two left it.
    pool = engine.pool(14, P_MEME)
    assert pool is not None
    assert pool.r1 == 10 * E18 + int(0.2 * E18) + 200 * E18
    back = Swap(14, 3, T0 + 30, "0xback", P_MEME, BOB, BOB, MEME, WBNB, front_run.amount_out, 0, 9)
    engine.apply(priced(engine, back))
    pushed = dict(engine.apply(priced(engine, buy_meme(0.1, T0 + 40, log=10))))
    assert pushed[tx_topic].ex is False
    after = pushed[agg_topic]
    assert after.p == engine.pool_price(pool, meme)
    assert after.p != before.p
    assert after.p == pytest.approx(before.p, rel=0.05)
