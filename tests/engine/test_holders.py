"""HolderBook: balances, holder counts, tags, top shares and PnL against batch recomputation."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given, settings, strategies as st
from tests.conftest import load_example

from cmcstream.engine.events import NativeBalanceChanged, TokenListed, Transfer, WalletLabeled
from cmcstream.engine.holders import TAGS, HolderBook
from cmcstream.protocol.payloads import (
    HolderCount,
    HoldersMetric,
    LastActive,
    NativeBalance,
    PnlStats,
    PositionTime,
    TagBalance,
    TagDistribution,
    TagPnl,
    TokenBalance,
    TopShare,
)

BSC, SOL = 14, 16
TOKEN = "0x00000000000000000000000000000000000000aa"
CREATOR = "0x00000000000000000000000000000000000000c0"
DECIMALS = 6
ONE = 10**DECIMALS
T0 = 1_778_659_184_000


def listed(
    supply: int = 1_000 * ONE, creator: str | None = CREATOR, chain: int = BSC
) -> TokenListed:
    return TokenListed(
        chain=chain,
        address=TOKEN,
        symbol="TKN",
        name="Token",
        decimals=DECIMALS,
        total_supply=supply,
        creator=creator,
    )


def transfer(
    sender: str | None, receiver: str | None, amount: int, *, ts: int = T0, block: int = 100
) -> Transfer:
    return Transfer(
        chain=BSC,
        block=block,
        ts=ts,
        tx=f"0x{ts:x}",
        token=TOKEN,
        sender=sender,
        receiver=receiver,
        amount=amount,
    )


def wallet(i: int) -> str:
    return f"0x{i:040x}"


def book_with(*events: TokenListed | Transfer | WalletLabeled) -> HolderBook:
    book = HolderBook()
    for ev in events:
        if isinstance(ev, TokenListed):
            book.on_token(ev)
        elif isinstance(ev, Transfer):
            book.on_transfer(ev)
        else:
            book.on_label(ev)
    return book


def by_tp(metrics: list[HoldersMetric]) -> dict[str, HoldersMetric]:
    return {m.tp: m for m in metrics}


# -- a batch model to compare with ---------------------------------------------------------


@dataclass
class Model:
    """The same semantics computed the slow, obvious way."""

    listed: int
    creator: str | None
    balances: dict[str, int] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    minted: int = 0
    burned: int = 0

    def apply(self, ev: Transfer | WalletLabeled) -> None:
        if isinstance(ev, WalletLabeled):
            self.tags[ev.wallet] = set(ev.tags)
            return
        if ev.amount <= 0 or ev.sender == ev.receiver:
            return
        if ev.sender is None:
            self.minted += ev.amount
        else:
            have = self.balances.get(ev.sender, 0)
            self.balances[ev.sender] = have - min(have, ev.amount)
        if ev.receiver is None:
            self.burned += ev.amount
        else:
            self.balances[ev.receiver] = self.balances.get(ev.receiver, 0) + ev.amount

    def holders(self) -> dict[str, int]:
        return {w: b for w, b in self.balances.items() if b > 0}

    def supply(self) -> int:
        held = sum(self.holders().values())
        return max(max(self.listed, self.minted) - self.burned, held)

    def has(self, w: str, tag: str) -> bool:
        return tag in self.tags.get(w, set()) or (tag == "dev" and w == self.creator)


WALLETS = [wallet(i) for i in range(1, 9)] + [CREATOR]
_wallets = st.sampled_from(WALLETS)
_ends = st.one_of(st.none(), _wallets)
_transfers = st.builds(transfer, _ends, _ends, st.integers(0, 50 * ONE))
_labels = st.builds(
    lambda w, tags: WalletLabeled(chain=BSC, wallet=w, tags=tuple(tags)),
    _wallets,
    st.lists(st.sampled_from([*TAGS, "unknown"]), max_size=3),
)
_events = st.lists(st.one_of(_transfers, _transfers, _transfers, _labels), max_size=120)


@settings(max_examples=300, deadline=None)
@given(events=_events, supply=st.integers(0, 400 * ONE))
def test_counts_balances_and_shares_match_a_batch_recomputation(
    events: list[Transfer | WalletLabeled], supply: int
) -> None:
    book = book_with(listed(supply))
    model = Model(listed=supply, creator=CREATOR)
    for ev in events:
        if isinstance(ev, Transfer):
            book.on_transfer(ev)
        else:
            book.on_label(ev)
        model.apply(ev)
        assert book.holder_count(BSC, TOKEN) == len(model.holders())

    holders = model.holders()
    for w in WALLETS:
        assert book.balance(BSC, TOKEN, w) == holders.get(w, 0) / ONE
    m = by_tp(book.metrics(BSC, TOKEN, T0))
    total = model.supply()

    count = m["holder_count"]
    assert isinstance(count, HolderCount)
    assert count.hc == len(holders)

    top = m["top_share"]
    assert isinstance(top, TopShare)
    ranked = sorted(holders.values(), reverse=True)
    assert top.t100ab == pytest.approx(sum(ranked[:100]) / ONE)
    if total == 0:
        assert (top.t10p, top.t50p, top.t100p) == (None, None, None)
    else:
        assert top.t10p is not None
        assert top.t50p is not None
        assert top.t100p is not None
        assert 0 <= top.t10p <= top.t50p <= top.t100p <= 100
        assert top.t10p == pytest.approx(sum(ranked[:10]) / total * 100)
        assert top.t100p == pytest.approx(sum(ranked[:100]) / total * 100)

    dist, bal = m["tag_distribution"], m["tag_balance"]
    assert isinstance(dist, TagDistribution)
    assert isinstance(bal, TagBalance)
    counts = [dist.devp, dist.khc, dist.whc, dist.bdhc, dist.shc, dist.bhc, dist.smhc]
    sums = [bal.devab, bal.kab, bal.wab, bal.bdab, bal.sab, bal.bab, bal.smab]
    for i, tag in enumerate(TAGS):
        tagged = [b for w, b in holders.items() if model.has(w, tag)]
        assert sums[i] == pytest.approx(sum(tagged) / ONE)
        if tag == "dev":
            assert counts[i] == (pytest.approx(sum(tagged) / total * 100) if total else None)
        else:
            assert counts[i] == len(tagged)


@settings(max_examples=50, deadline=None)
@given(balances=st.lists(st.integers(1, 10**12), min_size=0, max_size=300))
def test_top_shares_equal_a_brute_force_ranking(balances: list[int]) -> None:
    book = book_with(listed(supply=0, creator=None))
    for i, b in enumerate(balances):
        book.on_transfer(transfer(None, wallet(i + 1), b))
    top = book.metrics(BSC, TOKEN, T0)[2]
    assert isinstance(top, TopShare)
    total = sum(balances)
    ranked = sorted(balances, reverse=True)
    if not total:
        assert top.t10p is None
        return
    assert top.t10p == sum(ranked[:10]) / total * 100
    assert top.t50p == sum(ranked[:50]) / total * 100
    assert top.t100p == sum(ranked[:100]) / total * 100
    assert top.t100ab == sum(ranked[:100]) / ONE
    assert top.t10p is not None
    assert top.t50p is not None
    assert top.t100p is not None
    assert top.t10p <= top.t50p <= top.t100p <= 100


# -- supply and partial history -------------------------------------------------------------


def test_a_replayed_mint_is_not_counted_twice_and_a_burn_shrinks_the_supply() -> None:
    book = book_with(listed(supply=1_000 * ONE), transfer(None, CREATOR, 1_000 * ONE))
    book.watch_wallet(BSC, CREATOR)
    [balance, *_] = book.on_transfer(transfer(CREATOR, None, 500 * ONE))
    assert isinstance(balance, TokenBalance)
    assert balance.b == 500.0
    assert balance.hp == 100.0  # 500 of the 500 left


def test_a_sender_with_unseen_history_is_clamped_at_zero() -> None:
    book = book_with(listed(supply=100 * ONE), transfer(None, wallet(1), 10 * ONE))
    book.on_transfer(transfer(wallet(1), wallet(2), 30 * ONE))
    assert book.balance(BSC, TOKEN, wallet(1)) == 0.0
    assert book.balance(BSC, TOKEN, wallet(2)) == 30.0
    assert book.holder_count(BSC, TOKEN) == 1
    assert book.statistics()["overdrafts"] == 1


def test_ignored_transfers_are_counted() -> None:
    book = HolderBook()
    assert book.on_transfer(transfer(None, wallet(1), ONE)) == []
    book.on_token(listed())
    book.watch_wallet(BSC, wallet(1))
    assert book.on_transfer(transfer(None, wallet(1), 0)) == []
    stats = book.statistics()
    assert stats["transfers"] == 2
    assert stats["transfers_unknown_token"] == 1
    assert stats["transfers_zero"] == 1
    assert book.metrics(BSC, "0xunknown", T0) == []


# -- tags -----------------------------------------------------------------------------------


def test_a_wallet_labeled_after_it_holds_is_counted_from_then_on() -> None:
    whale = wallet(1)
    book = book_with(listed(), transfer(None, whale, 300 * ONE))
    book.on_label(WalletLabeled(chain=BSC, wallet=whale, tags=("whale", "smart_money")))
    dist, bal = book.metrics(BSC, TOKEN, T0)[0], book.metrics(BSC, TOKEN, T0)[4]
    assert isinstance(dist, TagDistribution)
    assert isinstance(bal, TagBalance)
    assert (dist.whc, dist.smhc, dist.khc) == (1, 1, 0)
    assert (bal.wab, bal.smab, bal.kab) == (300.0, 300.0, 0.0)

    # A restated label replaces the previous one; selling everything leaves no holder.
    book.on_label(WalletLabeled(chain=BSC, wallet=whale, tags=("whale",)))
    book.on_transfer(transfer(whale, wallet(2), 300 * ONE))
    dist, bal = book.metrics(BSC, TOKEN, T0)[0], book.metrics(BSC, TOKEN, T0)[4]
    assert isinstance(dist, TagDistribution)
    assert isinstance(bal, TagBalance)
    assert (dist.whc, dist.smhc) == (0, 0)
    assert (bal.wab, bal.smab) == (0.0, 0.0)


def test_devp_counts_the_creator_and_dev_tagged_wallets() -> None:
    book = book_with(
        listed(supply=1_000 * ONE),
        transfer(None, CREATOR, 100 * ONE),
        transfer(None, wallet(1), 20 * ONE),
        WalletLabeled(chain=BSC, wallet=wallet(1), tags=("dev",)),
    )
    dist = book.metrics(BSC, TOKEN, T0)[0]
    assert isinstance(dist, TagDistribution)
    assert dist.devp == pytest.approx(12.0)


# -- PnL ------------------------------------------------------------------------------------


def test_average_cost_pnl_by_hand() -> None:
    trader = wallet(7)
    book = book_with(listed(), WalletLabeled(chain=BSC, wallet=trader, tags=("kol",)))
    book.watch_wallet(BSC, trader)
    book.set_price(BSC, TOKEN, 1.0)
    book.on_trade(BSC, trader, TOKEN, 10.0, 10.0, T0)  # 10 @ $1
    book.set_price(BSC, TOKEN, 3.0)
    book.on_trade(BSC, trader, TOKEN, 10.0, 30.0, T0 + 1)  # 10 @ $3: 20 at an average of $2
    book.set_price(BSC, TOKEN, 5.0)
    [stats] = book.on_trade(BSC, trader, TOKEN, -5.0, 20.0, T0 + 2)  # 5 @ $4
    assert stats == PnlStats(pid=BSC, wa=trader, ts=T0 + 2, a=TOKEN, rpnl=10.0, upnl=45.0)
    pnl = book.metrics(BSC, TOKEN, T0)[3]
    assert isinstance(pnl, TagPnl)
    assert pnl.kpnl == 55.0  # 10 realized + 15 × $5 − $30
    assert pnl.wpnl is None  # no whale ever traded it


def test_a_sale_beyond_the_bought_position_is_at_zero_cost() -> None:
    trader = wallet(7)
    book = book_with(listed())
    book.watch_wallet(BSC, trader)
    book.on_trade(BSC, trader, TOKEN, 10.0, 10.0, T0)
    [stats] = book.on_trade(BSC, trader, TOKEN, -15.0, 30.0, T0 + 1)  # 5 came from an airdrop
    assert isinstance(stats, PnlStats)
    assert stats.rpnl == 20.0
    assert stats.upnl is None  # no price set yet
    book.set_price(BSC, TOKEN, 2.0)
    [stats] = book.on_trade(BSC, trader, TOKEN, 1.0, 2.0, T0 + 2)
    assert isinstance(stats, PnlStats)
    assert (stats.rpnl, stats.upnl) == (20.0, 0.0)


def test_a_leg_without_usd_uses_the_latest_price_or_is_skipped() -> None:
    trader = wallet(7)
    book = HolderBook()
    book.watch_wallet(BSC, trader)
    assert book.on_trade(BSC, trader, TOKEN, 10.0, None, T0) == []
    assert book.statistics()["trades_unpriced"] == 1
    book.set_price(BSC, TOKEN, 2.0)
    book.on_trade(BSC, trader, TOKEN, 10.0, None, T0)  # valued at $20
    book.set_price(BSC, TOKEN, 3.0)
    [stats] = book.on_trade(BSC, trader, TOKEN, -10.0, None, T0 + 1)  # sold for $30
    assert isinstance(stats, PnlStats)
    assert (stats.rpnl, stats.upnl) == (10.0, 0.0)


def test_tag_pnl_follows_a_relabel() -> None:
    trader = wallet(7)
    book = book_with(listed())
    book.set_price(BSC, TOKEN, 2.0)
    book.on_trade(BSC, trader, TOKEN, 10.0, 10.0, T0)
    book.on_label(WalletLabeled(chain=BSC, wallet=trader, tags=("sniper",)))
    pnl = book.metrics(BSC, TOKEN, T0)[3]
    assert isinstance(pnl, TagPnl)
    assert pnl.spnl == 10.0
    book.on_label(WalletLabeled(chain=BSC, wallet=trader, tags=()))
    pnl = book.metrics(BSC, TOKEN, T0)[3]
    assert isinstance(pnl, TagPnl)
    assert pnl.spnl is None


OTHER = "0x00000000000000000000000000000000000000bb"
_legs = st.tuples(
    st.sampled_from([wallet(1), wallet(2), CREATOR]),
    st.floats(0, 100),  # sold quantity (0: no leg)
    st.floats(0, 100),  # bought quantity
    st.one_of(st.none(), st.floats(0.01, 1000)),  # the leg's USD value
    st.one_of(st.none(), st.floats(0.01, 10)),  # the sold token's new price
    st.one_of(st.none(), st.floats(0.01, 10)),  # the bought token's
    st.booleans(),  # which token is sold
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_legs, max_size=40))
def test_a_swap_books_as_two_prices_and_two_legs(
    swaps: list[tuple[str, float, float, float | None, float | None, float | None, bool]],
) -> None:
    labels = WalletLabeled(chain=BSC, wallet=wallet(1), tags=("kol", "bot"))
    one_call, by_leg = book_with(listed(), labels), book_with(listed(), labels)
    for book in (one_call, by_leg):
        book.watch_wallet(BSC, wallet(1))
    for i, (trader, sold, bought, usd, p_sold, p_bought, flip) in enumerate(swaps):
        a, b = (TOKEN, OTHER) if flip else (OTHER, TOKEN)
        got = one_call.on_swap(BSC, trader, T0 + i, usd, (a, sold, p_sold), (b, bought, p_bought))
        for token, price in ((a, p_sold), (b, p_bought)):
            if price is not None:
                by_leg.set_price(BSC, token, price)
        want = by_leg.on_trade(BSC, trader, a, -sold, usd, T0 + i)
        want += by_leg.on_trade(BSC, trader, b, bought, usd, T0 + i)
        assert got == want
    assert one_call.statistics() == by_leg.statistics()
    for token in (TOKEN, OTHER):
        assert one_call.metrics(BSC, token, T0) == by_leg.metrics(BSC, token, T0)


def test_transfers_and_swaps_mark_a_token_changed_until_taken() -> None:
    book = book_with(listed())
    assert book.take_changed(BSC, TOKEN) is False  # listing alone moves no holder metric
    book.on_transfer(transfer(None, wallet(1), ONE))
    assert book.take_changed(BSC, TOKEN) is True
    assert book.take_changed(BSC, TOKEN) is False
    book.on_label(WalletLabeled(chain=BSC, wallet=wallet(1), tags=("whale",)))
    assert book.take_changed(BSC, TOKEN) is False
    book.on_transfer(transfer(wallet(1), wallet(1), ONE))  # a self-transfer still counts
    assert book.take_changed(BSC, TOKEN) is True
    book.on_swap(BSC, wallet(2), T0, None, (TOKEN, 0.0, None), (OTHER, 0.0, None))
    assert book.take_changed(BSC, TOKEN) is True  # even a swap that books nothing
    assert book.take_changed(BSC, "0x" + "9" * 40) is False


# -- wallet updates -------------------------------------------------------------------------


def test_wallet_updates_only_for_watched_wallets() -> None:
    watched, other = wallet(1), wallet(2)
    book = book_with(listed())
    assert book.on_transfer(transfer(None, other, ONE)) == []
    assert book.on_trade(BSC, other, TOKEN, 1.0, 1.0, T0) == []
    assert book.on_native(NativeBalanceChanged(BSC, 1, T0, other, 10**18)) == []

    book.watch_wallet(BSC, watched)
    assert book.on_transfer(transfer(None, other, ONE)) == []
    updates = book.on_transfer(transfer(other, watched, ONE, ts=T0 + 5, block=101))
    assert {u.wa for u in updates} == {watched}
    assert [u.tp for u in updates] == ["token_balance", "position_time", "last_active"]
    balance, _, active = updates
    assert balance == TokenBalance(pid=BSC, wa=watched, ts=T0 + 5, a=TOKEN, b=1.0, hp=0.1, bh=101)
    assert active == LastActive(pid=BSC, wa=watched, ts=T0 + 5, lat=T0 + 5)
    # The same wallet on another chain is someone else.
    book.unwatch_wallet(BSC, watched)
    book.watch_wallet(SOL, watched)
    assert book.on_transfer(transfer(other, watched, ONE)) == []


def test_position_time_opens_and_closes() -> None:
    w = wallet(1)
    book = book_with(listed())
    book.watch_wallet(BSC, w)
    opened = book.on_transfer(transfer(None, w, 5 * ONE, ts=T0))
    assert PositionTime(pid=BSC, wa=w, ts=T0, a=TOKEN, spot=T0, spct=None) in opened
    more = book.on_transfer(transfer(None, w, ONE, ts=T0 + 1))
    assert [u.tp for u in more] == ["token_balance", "last_active"]
    closed = book.on_transfer(transfer(w, None, 6 * ONE, ts=T0 + 9))
    assert [u.tp for u in closed] == ["token_balance", "position_time", "last_active"]
    assert closed[1] == PositionTime(pid=BSC, wa=w, ts=T0 + 9, a=TOKEN, spot=T0, spct=T0 + 9)
    assert closed[0].b == 0.0  # type: ignore[union-attr]
    reopened = book.on_transfer(transfer(None, w, ONE, ts=T0 + 20))
    assert reopened[1] == PositionTime(pid=BSC, wa=w, ts=T0 + 20, a=TOKEN, spot=T0 + 20, spct=None)


@pytest.mark.parametrize(
    ("chain", "raw", "expected"),
    [(SOL, 12_487_339_216, 12.487339216), (BSC, 15 * 10**17, 1.5), (1, 10**18, 1.0)],
)
def test_native_balance_in_native_units(chain: int, raw: int, expected: float) -> None:
    w = wallet(3)
    book = HolderBook()
    book.watch_wallet(chain, w)
    [update] = book.on_native(NativeBalanceChanged(chain, 416_995_860, T0, w, raw))
    assert update == NativeBalance(pid=chain, wa=w, ts=T0, b=expected, bh=416_995_860)


def test_native_balance_on_a_chain_without_known_decimals_is_not_guessed() -> None:
    book = HolderBook()
    book.watch_wallet(424242, wallet(3))
    assert book.on_native(NativeBalanceChanged(424242, 1, T0, wallet(3), 10**18)) == []
    assert book.statistics()["native_unknown_chain"] == 1


# -- wire shape -----------------------------------------------------------------------------


def _keys(payload: msgspec.Struct) -> list[str]:
    return list(msgspec.json.decode(msgspec.json.encode(payload)))


def test_every_variant_encodes_in_the_field_order_of_the_spec_examples() -> None:
    trader = wallet(1)
    book = book_with(listed(), transfer(None, trader, ONE))
    book.watch_wallet(BSC, trader)
    produced: list[msgspec.Struct] = list(book.metrics(BSC, TOKEN, T0))
    produced += book.on_transfer(transfer(trader, None, ONE))  # balance, close, activity
    produced += book.on_trade(BSC, trader, TOKEN, 1.0, 1.0, T0)
    produced += book.on_native(NativeBalanceChanged(BSC, 1, T0, trader, 10**18))
    names = {
        "tag_distribution": "data_onchain_holders_metrics_tag_distribution.json",
        "holder_count": "data_onchain_holders_metrics_holder_count.json",
        "top_share": "data_onchain_holders_metrics_top_share.json",
        "tag_pnl": "data_onchain_holders_metrics_tag_pnl.json",
        "tag_balance": "data_onchain_holders_metrics_tag_balance.json",
        "token_balance": "data_onchain_holder_wallet_update_token_balance.json",
        "position_time": "data_onchain_holder_wallet_update_position_time.json",
        "last_active": "data_onchain_holder_wallet_update_last_active.json",
        "pnl_stats": "data_onchain_holder_wallet_update_pnl_stats.json",
        "native_balance": "data_onchain_holder_wallet_update_native_balance.json",
    }
    seen = {p.tp: p for p in produced}  # type: ignore[attr-defined]
    assert set(seen) == set(names)
    for tp, name in names.items():
        assert _keys(seen[tp]) == list(load_example(name)["data"]), tp


def test_metrics_variants_come_in_the_spec_order() -> None:
    book = book_with(listed())
    assert [type(m) for m in book.metrics(BSC, TOKEN, T0)] == [
        TagDistribution,
        HolderCount,
        TopShare,
        TagPnl,
        TagBalance,
    ]


# -- scale ----------------------------------------------------------------------------------


def test_many_holders_stay_cheap_and_exact() -> None:
    n = 20_000
    book = book_with(listed(supply=0, creator=None))
    amounts = [(i * 7919) % 100_003 + 1 for i in range(n)]
    for i, a in enumerate(amounts):
        book.on_transfer(transfer(None, wallet(i + 1), a))
    for i in range(0, n, 2):  # half of them pass everything on
        book.on_transfer(transfer(wallet(i + 1), wallet(i + 2), amounts[i]))
    assert book.holder_count(BSC, TOKEN) == n // 2
    top = book.metrics(BSC, TOKEN, T0)[2]
    assert isinstance(top, TopShare)
    merged = [amounts[i] + amounts[i + 1] for i in range(0, n, 2)]
    assert top.t100ab == sum(heapq.nlargest(100, merged)) / ONE
