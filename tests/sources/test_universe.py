"""The coin universe: real CoinMarketCap ids on top, a seeded tail below."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cmcstream.sources.simulator.universe import GENERATED_ID_BASE, Asset, Universe

# Ids the spec names (§9.1) and a few more well-known ones.
WELL_KNOWN = {
    1: "BTC",
    1027: "ETH",
    825: "USDT",
    1839: "BNB",
    52: "XRP",
    5426: "SOL",
    3408: "USDC",
    74: "DOGE",
    2010: "ADA",
    1958: "TRX",
    5805: "AVAX",
    5994: "SHIB",
    6636: "DOT",
    1975: "LINK",
    1831: "BCH",
    2: "LTC",
    7083: "UNI",
    3794: "ATOM",
    512: "XLM",
    1321: "ETC",
    11419: "TON",
    20947: "SUI",
    21794: "APT",
    24478: "PEPE",
    11841: "ARB",
    11840: "OP",
    4943: "DAI",
    328: "XMR",
    6535: "NEAR",
    7278: "AAVE",
}


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe.load()


def test_default_size_is_5000_with_unique_ids_and_ranks(universe: Universe) -> None:
    assert len(universe) == 5000
    ids = [a.cid for a in universe]
    assert len(set(ids)) == len(ids)
    assert [a.rank for a in universe] == list(range(1, 5001))
    assert len({a.symbol for a in universe}) == 5000


@pytest.mark.parametrize("size", [0, 1, 50, 226, 300, 1200])
def test_size_is_honoured(size: int) -> None:
    u = Universe.load(size)
    assert len(u) == size
    assert [a.rank for a in u] == list(range(1, size + 1))


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Universe.load(-1)


def test_real_ids_are_present_with_their_symbols(universe: Universe) -> None:
    for cid, symbol in WELL_KNOWN.items():
        asset = universe.get(cid)
        assert asset is not None, cid
        assert asset.symbol == symbol
        assert not asset.generated
        assert cid in universe


def test_the_real_head_has_about_two_hundred_assets_below_the_generated_ids() -> None:
    real = Universe.real_assets()
    assert 200 <= len(real) < 300
    assert all(a.cid < GENERATED_ID_BASE for a in real)
    assert [a.rank for a in real] == list(range(1, len(real) + 1))


def test_realistic_prices_and_supplies(universe: Universe) -> None:
    btc = universe.get(1)
    eth = universe.get(1027)
    assert btc is not None
    assert eth is not None
    assert btc.rank == 1
    assert 70_000 < btc.price < 90_000
    assert btc.max_supply == 21_000_000
    assert btc.circulating_supply <= btc.max_supply
    assert 1_000 < eth.price < 10_000
    assert eth.max_supply is None
    for cid in (825, 3408, 4943):
        stable = universe.get(cid)
        assert stable is not None
        assert stable.price == 1.0
        assert stable.peg == 1.0
        assert stable.volatility < 0.02
    doge = universe.get(74)
    assert doge is not None
    assert doge.volatility >= 1.0
    assert btc.volatility < doge.volatility


def test_the_real_ranks_follow_market_cap() -> None:
    caps = [a.market_cap for a in Universe.real_assets()]
    assert caps == sorted(caps, reverse=True)


def test_every_asset_is_well_formed(universe: Universe) -> None:
    for a in universe:
        assert a.price > 0
        assert a.market_cap > 0
        assert a.volume_24h > 0
        assert a.volatility > 0
        assert a.launch_price > 0
        if a.circulating_supply is None:
            assert (a.total_supply, a.max_supply, a.supply_growth) == (None, None, 0.0)
            continue
        assert a.circulating_supply > 0
        assert a.market_cap == a.price * a.circulating_supply
        if a.max_supply is not None:
            assert a.max_supply >= a.circulating_supply * (1 - 1e-9)
        if a.total_supply is not None:
            assert a.total_supply >= a.circulating_supply * (1 - 1e-9)


def test_a_seeded_share_of_the_tail_has_an_unknown_supply(universe: Universe) -> None:
    real = Universe.real_assets()
    assert all(a.circulating_supply is not None for a in real)
    tail = universe.assets[len(real) :]
    unknown = [a.cid for a in tail if a.circulating_supply is None]
    assert 0.05 * len(tail) < len(unknown) < 0.12 * len(tail)
    assert unknown == [
        a.cid for a in Universe.load(seed=0).assets[len(real) :] if a.circulating_supply is None
    ]
    other = Universe.load(seed=1).assets[len(real) :]
    assert unknown != [a.cid for a in other if a.circulating_supply is None]


def test_the_top_coins_carry_public_reference_prices() -> None:
    by_symbol = {a.symbol: a for a in Universe.real_assets()}
    btc = by_symbol["BTC"]
    year_open = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000
    # The documentation's example: pytd -8.280487978902 % at p = 81187.93284788371.
    assert dict(btc.anchors)[year_open] == pytest.approx(81_187.93284788371 / (1 - 0.0828049))
    # pall 131301167.42003132 % makes the first known price 0.06183332.
    assert btc.launch_price == 0.06183332
    for symbol in ("ETH", "XRP", "SOL", "DOGE"):
        anchors = by_symbol[symbol].anchors
        assert len(anchors) >= 2, symbol
        assert [t for t, _ in anchors] == sorted(t for t, _ in anchors)
        assert all(price > 0 for _, price in anchors)
    assert by_symbol["USDT"].anchors == ()


def test_the_tail_is_generated_after_the_real_assets(universe: Universe) -> None:
    real = Universe.real_assets()
    tail = universe.assets[len(real) :]
    assert all(a.generated for a in tail)
    assert [a.cid for a in tail] == list(range(GENERATED_ID_BASE, GENERATED_ID_BASE + len(tail)))
    caps = [a.market_cap for a in tail]
    assert caps[0] < real[-1].market_cap
    assert caps == sorted(caps, reverse=True)
    assert min(a.volatility for a in tail) >= 0.9
    real_symbols = {a.symbol for a in real}
    assert not real_symbols & {a.symbol for a in tail}


def test_the_same_seed_gives_the_same_universe() -> None:
    assert Universe.load(600, seed=7).assets == Universe.load(600, seed=7).assets
    assert Universe.load(600, seed=7).assets != Universe.load(600, seed=8).assets


def test_a_smaller_universe_is_the_top_of_the_real_list() -> None:
    u = Universe.load(10)
    assert [a.cid for a in u] == [a.cid for a in Universe.real_assets()[:10]]


def test_duplicate_ids_are_refused() -> None:
    btc = Universe.real_assets()[0]
    with pytest.raises(ValueError, match="unique"):
        Universe([btc, btc])


def test_a_custom_universe_is_ordered_by_rank() -> None:
    a, b = Universe.real_assets()[:2]
    u = Universe([b, a])
    assert [x.cid for x in u] == [a.cid, b.cid]
    assert isinstance(u.assets[0], Asset)
