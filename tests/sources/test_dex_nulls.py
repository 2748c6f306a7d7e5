"""Part of the long tail lacks data, as real listings do: the engine's pushes carry nulls."""

from __future__ import annotations

from typing import Any

import pytest

from cmcstream.engine.onchain import OnchainEngine
from cmcstream.protocol.channels import ChannelRegistry
from cmcstream.protocol.payloads import TagBalance, TagDistribution, TagPnl, TokenMetric
from cmcstream.sources.simulator.dex import DEFAULT_PRICES, DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld

START = 1_778_659_200_000


@pytest.fixture(scope="module")
def pushes() -> tuple[DexWorld, list[tuple[str, Any]]]:
    world = DexWorld.build(0)
    sim = DexSimulator(world, seed=0)
    engine = OnchainEngine(DEFAULT_PRICES.get)
    engine.apply_many(sim.genesis(START, DEFAULT_PRICES))
    registry = ChannelRegistry()
    for channel in ("onchain@token_metric", "onchain@holders_metrics"):
        spec = registry.get(channel)
        assert spec is not None
        for token in world.tokens:
            params = {"platform_id": token.chain, "address": token.address}
            for sub in registry.normalize(spec, params):
                engine.watch(sub, START)
    out: list[tuple[str, Any]] = []
    for k in range(1, 181):
        now = START + 1000 * k
        out += engine.apply_many(sim.step(now, DEFAULT_PRICES))
        out += engine.advance(now)
    return world, out


def test_some_of_the_long_tail_has_no_supply_or_dev(pushes: tuple[DexWorld, Any]) -> None:
    world, _ = pushes
    for chain in world.chains:
        memes = world.memes(chain)
        assert memes[0].supply_known  # the busiest meme is fully known
        assert memes[0].dev_known
        assert any(not m.supply_known for m in memes[1:])
        assert any(not m.dev_known for m in memes[1:])
        for meme in memes:
            if not meme.dev_known:
                assert meme.creator is not None
                assert world.wallet(chain, meme.creator).tags == ()


def test_unknown_supply_gives_a_null_market_cap(pushes: tuple[DexWorld, Any]) -> None:
    world, out = pushes
    metrics = [p for _, p in out if isinstance(p, TokenMetric)]
    by_token: dict[tuple[int, str], list[TokenMetric]] = {}
    for m in metrics:
        by_token.setdefault((m.pid, m.a), []).append(m)
    nulls = 0
    for (chain, address), pushed in by_token.items():
        token = world.token(chain, address)
        if token.is_reference:
            assert all(m.mc is not None and m.lu is not None for m in pushed), token.symbol
        elif not token.supply_known:
            # Valued nowhere either, as in the documentation's example.
            assert all(m.mc is None and m.lu is None for m in pushed)
            assert all(m.p is None or m.p > 0 for m in pushed)
            nulls += len(pushed)
        else:
            assert all(m.mc is not None for m in pushed if m.p is not None)
            assert all(m.lu is not None for m in pushed if m.p is not None)
    assert nulls > 0


def test_a_token_without_a_known_dev_has_no_dev_pnl(pushes: tuple[DexWorld, Any]) -> None:
    world, out = pushes
    pnl = [p for _, p in out if isinstance(p, TagPnl)]
    anonymous = [p for p in pnl if not world.token(p.pid, p.a).dev_known]
    assert anonymous
    assert all(p.devpnl is None for p in anonymous)


def test_a_token_without_a_known_dev_has_no_dev_share_or_balance(
    pushes: tuple[DexWorld, Any],
) -> None:
    world, out = pushes
    shares = [p for _, p in out if isinstance(p, TagDistribution | TagBalance)]
    known = [p for p in shares if world.token(p.pid, p.a).dev_known]
    anonymous = [p for p in shares if not world.token(p.pid, p.a).dev_known]
    assert anonymous
    assert known
    for push in anonymous:
        assert (push.devp if isinstance(push, TagDistribution) else push.devab) is None
    for push in known:
        assert (push.devp if isinstance(push, TagDistribution) else push.devab) is not None
