"""The venue book: VWAP across venues, the outlier rule and silent venues, on an injected clock.

Prices are Kraken's recorded BTC/USDT trades (tests/data/exchanges) where one
venue's figure is needed, and round numbers where the arithmetic is the point.
"""

from __future__ import annotations

import pytest

from cmcstream.sources.exchanges.venues import VenueBook, VenueRules

BTC = 1
T0 = 1_710_327_959_173  # Kraken's recorded BTC/USDT trade


def test_the_price_is_the_volume_weighted_mean_across_venues() -> None:
    book = VenueBook()
    book.add("kraken", BTC, T0, 73324.4, 755.9012396)  # 0.010309 BTC
    book.add("kraken", BTC, T0 + 500, 73380.6, 117.929)
    book.add("binance", BTC, T0 + 700, 73350.0, 3000.0)
    [trade] = book.prints(T0 + 1000)
    kraken_vwap = (73324.4 * 755.9012396 + 73380.6 * 117.929) / (755.9012396 + 117.929)
    expected = (kraken_vwap * (755.9012396 + 117.929) + 73350.0 * 3000.0) / (
        755.9012396 + 117.929 + 3000.0
    )
    assert trade.cid == BTC
    assert trade.ts == T0 + 1000
    assert trade.price == pytest.approx(expected, rel=1e-12)
    assert trade.volume_usd == pytest.approx(755.9012396 + 117.929 + 3000.0)


def test_only_assets_that_traded_since_the_last_print_print_again() -> None:
    book = VenueBook()
    book.add("kraken", BTC, T0, 100.0, 10.0)
    assert len(book.prints(T0 + 1)) == 1
    assert book.prints(T0 + 2) == []
    book.add("kraken", BTC, T0 + 3, 101.0, 5.0)
    [again] = book.prints(T0 + 4)
    assert again.volume_usd == 5.0  # only what traded since the previous print


def test_a_venue_far_from_the_median_is_left_out() -> None:
    book = VenueBook(VenueRules(max_deviation=0.02))
    book.add("kraken", BTC, T0, 100.0, 1000.0)
    book.add("binance", BTC, T0, 101.0, 1000.0)
    book.add("badex", BTC, T0, 150.0, 1_000_000.0)  # huge volume, wrong price
    [trade] = book.prints(T0 + 1)
    assert trade.price == pytest.approx(100.5)
    assert trade.volume_usd == 2000.0  # the outlier's volume is not the asset's either
    assert book.rejected == 1


def test_with_two_venues_the_last_price_decides_which_is_wrong() -> None:
    book = VenueBook(VenueRules(max_deviation=0.02))
    book.add("kraken", BTC, T0, 100.0, 1000.0)
    book.add("binance", BTC, T0, 100.2, 1000.0)
    [first] = book.prints(T0 + 1)
    book.add("binance", BTC, T0 + 2, 80.0, 5000.0)  # a bad print on one of two venues
    book.add("kraken", BTC, T0 + 2, 100.1, 1000.0)
    [second] = book.prints(T0 + 3)
    assert second.price == pytest.approx((100.0 * 1000 + 100.1 * 1000) / 2000)
    assert abs(second.price / first.price - 1) < 0.01


def test_when_every_venue_moved_the_market_moved() -> None:
    book = VenueBook(VenueRules(max_deviation=0.02))
    book.add("kraken", BTC, T0, 100.0, 10.0)
    book.add("binance", BTC, T0, 100.0, 10.0)
    book.prints(T0 + 1)
    rules = book.rules
    later = T0 + rules.window_ms + 1  # the old trades have left the window
    book.add("kraken", BTC, later, 90.0, 10.0)
    book.add("binance", BTC, later, 91.0, 10.0)
    [trade] = book.prints(later + 1)
    assert trade.price == pytest.approx(90.5)


def test_a_silent_venue_stops_moving_the_price_and_counts_again_when_it_trades() -> None:
    rules = VenueRules(window_ms=60_000, stale_ms=120_000)
    book = VenueBook(rules)
    book.add("kraken", BTC, T0, 73324.4, 1000.0)
    book.add("binance", BTC, T0, 73400.0, 1000.0)
    assert book.prints(T0 + 1)[0].price == pytest.approx(73362.2)
    # Binance goes silent; Kraken trades on.
    t = T0 + rules.stale_ms + 1_000
    book.add("kraken", BTC, t, 73380.6, 500.0)
    assert book.live_venues(BTC, t) == ["kraken"]
    [trade] = book.prints(t)
    assert trade.price == 73380.6  # binance's last trade no longer pins the price
    # Back again.
    book.add("binance", BTC, t + 10, 73390.0, 500.0)
    assert book.live_venues(BTC, t + 10) == ["binance", "kraken"]
    assert book.prints(t + 20)[0].price == pytest.approx((73380.6 + 73390.0) / 2)


def test_nothing_prints_when_every_venue_is_silent() -> None:
    book = VenueBook(VenueRules(stale_ms=1_000))
    book.add("kraken", BTC, T0, 100.0, 1.0)
    assert book.prints(T0 + 5_000) == []


def test_a_venue_with_no_trade_in_the_window_counts_at_its_last_price() -> None:
    book = VenueBook(VenueRules(window_ms=1_000, stale_ms=60_000))
    book.add("kraken", BTC, T0, 100.0, 10.0)
    book.add("binance", BTC, T0 + 5_000, 101.0, 10.0)
    [trade] = book.prints(T0 + 5_000)
    assert trade.price == 101.0  # kraken is live but has no volume in the window


@pytest.mark.parametrize(("price", "volume"), [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0)])
def test_a_bad_trade_is_ignored(price: float, volume: float) -> None:
    book = VenueBook()
    book.add("kraken", BTC, T0, price, volume)
    assert book.prints(T0 + 1) == []


@pytest.mark.parametrize(
    "kwargs", [{"window_ms": 0}, {"stale_ms": -1}, {"max_deviation": 0}, {"max_deviation": 1.5}]
)
def test_rules_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"positive|fraction"):
        VenueRules(**kwargs)  # type: ignore[arg-type]
