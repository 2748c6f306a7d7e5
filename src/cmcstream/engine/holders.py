"""Holders of every token, and the wallets someone watches: the two holder channels' reducer.

:class:`HolderBook` folds token transfers, native balance changes, wallet labels
and USD-priced swap legs into per-token state, and reads out the
``onchain@holders_metrics`` variants (§9.8) and the ``onchain@holder_wallet_update``
variants (§9.9). It is pure: no I/O, no clock; every time comes from an event or
an argument.

State per token, and why it is shaped this way:

* **Balances** are exact raw integers (the token's smallest unit) in a dict that
  holds only wallets with a positive balance, so the holder count is its size
  and memory follows the number of holders, not of wallets ever seen. The time
  each position opened sits beside it, for ``position_time``.
* **Tag counts and tag balances** are running sums updated on every transfer
  that touches a tagged wallet, so ``tag_distribution`` and ``tag_balance`` cost
  nothing to read. A wallet's tags are a 7-bit mask; most wallets have none and
  take the fast path.
* **Top shares** are the one thing computed on read (``heapq.nlargest`` over the
  balances, O(holders)), because an exact incremental top-100 would cost on
  every transfer while the engine reads it at most about once a second.
* **PnL** is an average-cost book per (wallet, token) fed by swap legs, and per
  tag the sums of realized PnL, open quantity and remaining cost. Total PnL is
  ``realized + quantity × price − cost``, linear in those sums, so ``tag_pnl``
  is O(1) at any price.

Supply. The denominator of every percentage (``hp``, ``devp``, ``t10p``…) is
``max(listed, minted) − burned``, floored at the sum of known balances:
``listed`` is the ``total_supply`` of :class:`~cmcstream.engine.events.TokenListed`,
``minted``/``burned`` the totals of mint and burn transfers seen. A source that
lists a token and then replays its minting is not counted twice, burns shrink
the supply, and no share can exceed 100 % even when history is partial.

Partial history. A source that starts on a live chain sees wallets spend tokens
they received before it started. Such a sender's balance is clamped at zero
(the tokens it could not account for are counted as ``overdrafts`` in
:meth:`HolderBook.statistics`); balances never go negative.

Tags. A :class:`~cmcstream.engine.events.WalletLabeled` event states a wallet's
complete set of tags on its chain and replaces the previous set (so a source can
take a tag back). The ``dev`` group of a token is its creator plus every wallet
tagged ``dev``. Relabeling a wallet moves its current balances and PnL between
the tag sums of every token of its chain at once, so the counts are right from
then on. Unknown tag names are ignored.
"""

from __future__ import annotations

import heapq
from typing import Final

from cmcstream.engine.events import NativeBalanceChanged, TokenListed, Transfer, WalletLabeled
from cmcstream.engine.numeric import quotient, units
from cmcstream.engine.tokens import NATIVE, reference_token
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
    WalletUpdate,
)

__all__ = ["TAGS", "HolderBook"]

TAGS: Final[tuple[str, ...]] = ("dev", "kol", "whale", "bundler", "sniper", "bot", "smart_money")
"""Holder tags, in the order of the payload fields (``devp``, ``khc``, ``whc``, ``bdhc``…)."""

_NTAGS: Final = len(TAGS)
_BIT: Final[dict[str, int]] = {name: 1 << i for i, name in enumerate(TAGS)}
_DEV: Final = _BIT["dev"]
# The tag indices of every mask, so a tagged wallet's update loops over its own tags only.
_INDICES: Final[tuple[tuple[int, ...], ...]] = tuple(
    tuple(i for i in range(_NTAGS) if mask >> i & 1) for mask in range(1 << _NTAGS)
)


class _Position:
    """Average-cost book of one wallet in one token (token units and USD)."""

    __slots__ = ("cost", "qty", "realized")

    def __init__(self) -> None:
        self.qty = 0.0  # tokens bought and not yet sold
        self.cost = 0.0  # USD paid for ``qty``
        self.realized = 0.0  # USD


class _Token:
    """Everything the book knows about one token on one chain."""

    __slots__ = (
        "address",
        "balances",
        "burned",
        "chain",
        "changed",
        "creator",
        "decimals",
        "held",
        "listed",
        "listed_supply",
        "minted",
        "opened",
        "positions",
        "price",
        "tag_cost",
        "tag_holders",
        "tag_qty",
        "tag_raw",
        "tag_realized",
        "tag_traders",
    )

    def __init__(self, chain: int, address: str) -> None:
        self.chain = chain
        self.address = address
        # Swap legs may name a token that was never listed (a quote token); its PnL
        # is still kept, but it has no balances and no metrics until it is listed.
        self.listed = False
        self.decimals = 0
        self.listed_supply = 0  # raw
        self.creator: str | None = None
        self.minted = 0  # raw, from mint transfers
        self.burned = 0  # raw, from burn transfers
        self.held = 0  # raw, sum of ``balances``
        self.balances: dict[str, int] = {}  # raw, positive only
        self.opened: dict[str, int] = {}  # epoch ms each current position opened
        self.tag_holders = [0] * _NTAGS
        self.tag_raw = [0] * _NTAGS  # raw balance per tag
        self.price: float | None = None  # USD per token
        self.changed = False  # a transfer or swap touched it since take_changed()
        self.positions: dict[str, _Position] = {}
        self.tag_traders = [0] * _NTAGS  # tagged wallets with a position record
        self.tag_qty = [0.0] * _NTAGS
        self.tag_cost = [0.0] * _NTAGS
        self.tag_realized = [0.0] * _NTAGS

    def supply(self) -> int:
        """The raw supply every percentage is taken of (see the module docstring)."""
        return max(max(self.listed_supply, self.minted) - self.burned, self.held)

    def mask(self, tags: dict[str, int], wallet: str) -> int:
        mask = tags.get(wallet, 0)
        return mask | _DEV if wallet == self.creator else mask

    def retag(self, wallet: str, old: int, new: int) -> None:
        """Move ``wallet``'s balance and PnL from the tags of ``old`` to those of ``new``."""
        if old == new:
            return
        removed, added = _INDICES[old & ~new], _INDICES[new & ~old]
        raw = self.balances.get(wallet, 0)
        if raw:
            for i in removed:
                self.tag_holders[i] -= 1
                self.tag_raw[i] -= raw
            for i in added:
                self.tag_holders[i] += 1
                self.tag_raw[i] += raw
        pos = self.positions.get(wallet)
        if pos is not None:
            for i in removed:
                self.tag_traders[i] -= 1
                self.tag_qty[i] -= pos.qty
                self.tag_cost[i] -= pos.cost
                self.tag_realized[i] -= pos.realized
            for i in added:
                self.tag_traders[i] += 1
                self.tag_qty[i] += pos.qty
                self.tag_cost[i] += pos.cost
                self.tag_realized[i] += pos.realized


class _Chain:
    """One chain's tokens, wallet tags and watched wallets, each keyed by address.

    Per-chain tables keyed by the address string alone spare every event a
    ``(chain, address)`` key tuple to build and hash.
    """

    __slots__ = ("tags", "tokens", "watched")

    def __init__(self) -> None:
        self.tokens: dict[str, _Token] = {}
        self.tags: dict[str, int] = {}  # wallet -> tag mask
        # Wallets someone subscribed to with ``onchain@holder_wallet_update``: wallet
        # payloads are built for these only, since most transfers concern no one's.
        self.watched: set[str] = set()


class HolderBook:
    """Token holders, holder tags and wallet PnL of every chain; the holder channels' payloads."""

    def __init__(self) -> None:
        self._chains: dict[int, _Chain] = {}
        self._transfers = 0
        self._unknown_token = 0
        self._zero_amount = 0
        self._overdrafts = 0
        self._trades = 0
        self._unpriced = 0
        self._labels = 0
        self._unknown_native = 0

    # -- watched wallets ---------------------------------------------------------------------

    def watch_wallet(self, chain: int, wallet: str) -> None:
        """Build ``holder_wallet_update`` payloads for ``wallet`` from now on."""
        self._chain(chain).watched.add(wallet)

    def unwatch_wallet(self, chain: int, wallet: str) -> None:
        """Stop building the wallet's payloads (its last subscriber left)."""
        ch = self._chains.get(chain)
        if ch is not None:
            ch.watched.discard(wallet)

    # -- events ----------------------------------------------------------------------------

    def on_token(self, ev: TokenListed) -> None:
        """List a token, or restate its metadata (balances and PnL are kept).

        Args:
            ev: the listing; ``total_supply`` is raw, ``creator`` joins the token's
                ``dev`` group.
        """
        tok = self._token(ev.chain, ev.address)
        tok.listed = True
        tok.decimals = ev.decimals
        tok.listed_supply = ev.total_supply
        if ev.creator != tok.creator:
            tags = self._chain(ev.chain).tags
            before = [(w, tok.mask(tags, w)) for w in (tok.creator, ev.creator) if w is not None]
            tok.creator = ev.creator
            for wallet, old in before:
                tok.retag(wallet, old, tok.mask(tags, wallet))

    def on_label(self, ev: WalletLabeled) -> None:
        """Replace a wallet's tags on its chain; O(tokens of the chain).

        Args:
            ev: the wallet and its complete set of tags (names from :data:`TAGS`;
                others are ignored).
        """
        self._labels += 1
        ch = self._chain(ev.chain)
        tags = ch.tags
        old = tags.get(ev.wallet, 0)
        new = 0
        for name in ev.tags:
            new |= _BIT.get(name.lower(), 0)
        if new == old:
            return
        if new:
            tags[ev.wallet] = new
        else:
            del tags[ev.wallet]
        # Labels are rare and a source's opinion; walking the chain's tokens here
        # keeps a per-wallet index of holdings (and its memory) off the transfer path.
        for tok in ch.tokens.values():
            dev = _DEV if ev.wallet == tok.creator else 0
            tok.retag(ev.wallet, old | dev, new | dev)

    def on_transfer(self, ev: Transfer) -> list[WalletUpdate]:
        """Move tokens between wallets (a mint has no sender, a burn no receiver).

        Args:
            ev: the transfer; ``amount`` is raw.

        Returns:
            For each watched side, sender first: its ``token_balance`` (``b`` in
            token units, ``hp`` in % of supply, ``bh`` the event's block), a
            ``position_time`` when its balance went from zero to positive (``spot``)
            or back to zero (``spct``), and its ``last_active`` (``lat`` = the
            event's time). Empty for an unlisted token or a zero amount (no
            balance moved; zero-amount transfers are also how address-poisoning
            spam looks).
        """
        self._transfers += 1
        ch = self._chains.get(ev.chain)
        tok = ch.tokens.get(ev.token) if ch is not None else None
        if ch is None or tok is None or not tok.listed:
            self._unknown_token += 1
            return []
        tok.changed = True
        amount = ev.amount
        sender, receiver = ev.sender, ev.receiver
        if amount <= 0:
            self._zero_amount += 1
            return []
        if sender == receiver:
            # A self-transfer moves nothing; clamping a debit and crediting it back
            # could otherwise create tokens for a wallet with partial history.
            if sender is None or sender not in ch.watched:
                return []
            return self._wallet_side(tok, ev, sender, 0, None)
        tags = ch.tags
        creator = tok.creator
        balances = tok.balances
        sender_change = receiver_change = 0  # +1 a position opened, -1 it closed
        spot: int | None = None  # when the sender's closed position had opened
        if sender is None:
            tok.minted += amount
        else:
            before = balances.get(sender, 0)
            if amount < before:
                balances[sender] = before - amount
                taken = amount
            else:  # the whole balance goes, and more than it if history is partial
                taken = before
                if amount > before:
                    self._overdrafts += 1
                if before:
                    del balances[sender]
                    spot = tok.opened.pop(sender, None)
                    sender_change = -1
            if taken:
                tok.held -= taken
                mask = tags.get(sender, 0) if tags else 0
                if sender == creator:
                    mask |= _DEV
                if mask:
                    tag_raw, tag_holders = tok.tag_raw, tok.tag_holders
                    for i in _INDICES[mask]:
                        tag_raw[i] -= taken
                        tag_holders[i] += sender_change
        if receiver is None:
            tok.burned += amount
        else:
            before = balances.get(receiver, 0)
            balances[receiver] = before + amount
            tok.held += amount
            if not before:
                tok.opened[receiver] = ev.ts
                receiver_change = 1
            mask = tags.get(receiver, 0) if tags else 0
            if receiver == creator:
                mask |= _DEV
            if mask:
                tag_raw, tag_holders = tok.tag_raw, tok.tag_holders
                for i in _INDICES[mask]:
                    tag_raw[i] += amount
                    tag_holders[i] += receiver_change
        watched = ch.watched
        if not watched:
            return []
        out: list[WalletUpdate] = []
        if sender is not None and sender in watched:
            out += self._wallet_side(tok, ev, sender, sender_change, spot)
        if receiver is not None and receiver in watched:
            out += self._wallet_side(tok, ev, receiver, receiver_change, ev.ts)
        return out

    def on_trade(
        self, chain: int, wallet: str, token: str, qty: float, usd: float | None, ts: int
    ) -> list[WalletUpdate]:
        """Book one swap leg in the wallet's average-cost PnL of ``token``.

        A buy adds ``qty`` and its USD cost to the position. A sell realizes
        ``proceeds − average cost × quantity sold``. A sell larger than the
        position the book saw bought is clamped to that position: the rest came
        from transfers or airdrops, at zero cost basis, so its whole proceeds are
        realized profit. A leg without a USD value is valued at the token's latest
        price; with no price at all it is skipped (counted as ``unpriced``).

        Unrealized PnL uses the price of the last :meth:`set_price`, so set the
        price a swap moves to before booking its legs.

        Args:
            chain: CoinMarketCap platform id.
            wallet: the trader.
            token: the token of this leg.
            qty: token units; positive bought, negative sold.
            usd: USD value of the leg (positive), or ``None`` when unknown.
            ts: epoch ms of the swap.

        Returns:
            A ``pnl_stats`` (``rpnl``, ``upnl`` in USD) if the wallet is watched.
        """
        self._trades += 1
        if not qty:
            return []
        ch = self._chain(chain)
        tok = self._token(chain, token)
        tok.changed = True
        return self._leg(
            tok, chain, wallet, qty, usd, ts, ch.tags.get(wallet, 0), wallet in ch.watched
        )

    def on_swap(
        self,
        chain: int,
        wallet: str,
        ts: int,
        usd: float | None,
        sold: tuple[str, float, float | None],
        bought: tuple[str, float, float | None],
    ) -> list[WalletUpdate]:
        """Both legs of one swap: set the two tokens' prices, then book the sale and the buy.

        The same as :meth:`set_price` for each token with a price, then
        :meth:`on_trade` with ``-quantity`` of ``sold`` and ``+quantity`` of
        ``bought``, in one call (a swap is the engine's commonest event).

        Args:
            chain: CoinMarketCap platform id.
            wallet: the trader.
            ts: epoch ms of the swap.
            usd: USD value of each leg, or ``None`` when unknown.
            sold: ``(token, quantity, price)`` of the token the wallet gave:
                quantity in token units (positive), price in USD after the swap or
                ``None`` to keep the last one.
            bought: the same for the token the wallet got.

        Returns:
            The ``pnl_stats`` of each booked leg, sale first, if the wallet is watched.
        """
        ch = self._chain(chain)
        tokens = ch.tokens
        sold_token, sold_qty, sold_price = sold
        bought_token, bought_qty, bought_price = bought
        sold_tok = tokens.get(sold_token)
        if sold_tok is None and (sold_qty or sold_price is not None):
            sold_tok = self._token(chain, sold_token)
        bought_tok = tokens.get(bought_token)
        if bought_tok is None and (bought_qty or bought_price is not None):
            bought_tok = self._token(chain, bought_token)
        if sold_tok is not None:
            sold_tok.changed = True  # its tag PnL moves with the price, even without a leg
            if sold_price is not None:
                sold_tok.price = sold_price
        if bought_tok is not None:
            bought_tok.changed = True
            if bought_price is not None:
                bought_tok.price = bought_price
        self._trades += 2
        tags = ch.tags
        mask = tags.get(wallet, 0) if tags else 0
        watched = ch.watched
        is_watched = bool(watched) and wallet in watched
        out: list[WalletUpdate] = []
        if sold_tok is not None and sold_qty:
            out += self._leg(sold_tok, chain, wallet, -sold_qty, usd, ts, mask, is_watched)
        if bought_tok is not None and bought_qty:
            out += self._leg(bought_tok, chain, wallet, bought_qty, usd, ts, mask, is_watched)
        return out

    def _leg(
        self,
        tok: _Token,
        chain: int,
        wallet: str,
        qty: float,
        usd: float | None,
        ts: int,
        mask: int,
        watched: bool,
    ) -> list[WalletUpdate]:
        """Book a non-zero leg (see :meth:`on_trade`); ``mask`` holds the wallet's tags."""
        price = tok.price
        if usd is None:
            if price is None:
                self._unpriced += 1
                return []
            usd = abs(qty) * price
        positions = tok.positions
        pos = positions.get(wallet)
        new = pos is None
        if pos is None:
            pos = positions[wallet] = _Position()
        if qty > 0:
            d_qty, d_cost, d_realized = qty, usd, 0.0
            pos.qty += qty
            pos.cost += usd
        else:
            sold = -qty
            if sold >= pos.qty:
                # Close exactly: the rest of the sale is at zero cost basis, and
                # the book keeps no float residue of a position that is gone.
                d_qty, d_cost = -pos.qty, -pos.cost
                pos.qty = pos.cost = 0.0
            else:
                d_qty, d_cost = qty, -pos.cost * sold / pos.qty
                pos.qty += d_qty
                pos.cost += d_cost
            d_realized = usd + d_cost
            pos.realized += d_realized
        if wallet == tok.creator:
            mask |= _DEV
        if mask:
            for i in _INDICES[mask]:
                tok.tag_traders[i] += new
                tok.tag_qty[i] += d_qty
                tok.tag_cost[i] += d_cost
                tok.tag_realized[i] += d_realized
        if not watched:
            return []
        return [
            PnlStats(
                pid=chain,
                wa=wallet,
                ts=ts,
                a=tok.address,
                rpnl=pos.realized,
                upnl=pos.qty * price - pos.cost if price is not None else None,
            )
        ]

    def on_native(self, ev: NativeBalanceChanged) -> list[WalletUpdate]:
        """A wallet's native-coin balance.

        Args:
            ev: the new balance, raw (wei, lamports…).

        Returns:
            A ``native_balance`` (``b`` in native-coin units, ``bh`` the event's
            block) if the wallet is watched. Empty on a chain whose native coin
            decimals :data:`~cmcstream.engine.tokens.NATIVE` does not know (counted
            as ``native_unknown_chain``): the book does not guess a unit.
        """
        ch = self._chains.get(ev.chain)
        if ch is None or ev.wallet not in ch.watched:
            return []
        native = NATIVE.get(ev.chain)
        if native is None:
            self._unknown_native += 1
            return []
        return [
            NativeBalance(
                pid=ev.chain,
                wa=ev.wallet,
                ts=ev.ts,
                b=units(ev.balance, native[2]),
                bh=ev.block,
            )
        ]

    def set_price(self, chain: int, token: str, usd: float) -> None:
        """The token's latest USD price, for unrealized PnL and ``tag_pnl``."""
        self._token(chain, token).price = usd

    # -- reads -----------------------------------------------------------------------------

    def metrics(self, chain: int, token: str, ts: int) -> list[HoldersMetric]:
        """All five ``holders_metrics`` variants of a token, in the spec's order (§9.8).

        ``tag_distribution``, ``holder_count``, ``tag_balance`` and ``tag_pnl`` are
        read from running sums; ``top_share`` takes O(holders) (``heapq.nlargest``).

        Args:
            chain: CoinMarketCap platform id.
            token: token address.
            ts: epoch ms stamped on every payload.

        Returns:
            ``tag_distribution``, ``holder_count``, ``top_share``, ``tag_pnl``,
            ``tag_balance``; empty for a token never listed. Percentages are on the
            0–100 scale of the supply (``None`` while the supply is zero); balances
            in token units; PnL in USD (``None`` for a tag no wallet of which ever
            traded the token, or while the token has no price).
        """
        tok = self._find(chain, token)
        if tok is None or not tok.listed:
            return []
        supply = tok.supply()
        dec = tok.decimals
        top = heapq.nlargest(100, tok.balances.values())
        t10, t50, t100 = sum(top[:10]), sum(top[:50]), sum(top)
        holders = tok.tag_holders
        raw = tok.tag_raw
        pnl = [self._tag_pnl(tok, i) for i in range(_NTAGS)]
        balance = [units(r, dec) for r in raw]
        # A token whose listing names no creator has no dev data (the majors'
        # issuers are known); its dev share and balance are null, not zero.
        dev_known = tok.creator is not None or reference_token(chain, token) is not None
        return [
            TagDistribution(
                pid=chain,
                a=token,
                ts=ts,
                devp=_pct(raw[0], supply) if dev_known else None,
                khc=holders[1],
                whc=holders[2],
                bdhc=holders[3],
                shc=holders[4],
                bhc=holders[5],
                smhc=holders[6],
            ),
            HolderCount(pid=chain, a=token, ts=ts, hc=len(tok.balances)),
            TopShare(
                pid=chain,
                a=token,
                ts=ts,
                t10p=_pct(t10, supply),
                t50p=_pct(t50, supply),
                t100p=_pct(t100, supply),
                t100ab=units(t100, dec),
            ),
            TagPnl(
                pid=chain,
                a=token,
                ts=ts,
                devpnl=pnl[0],
                kpnl=pnl[1],
                wpnl=pnl[2],
                bdpnl=pnl[3],
                spnl=pnl[4],
                bpnl=pnl[5],
                smpnl=pnl[6],
            ),
            TagBalance(
                pid=chain,
                a=token,
                ts=ts,
                devab=balance[0] if dev_known else None,
                kab=balance[1],
                wab=balance[2],
                bdab=balance[3],
                sab=balance[4],
                bab=balance[5],
                smab=balance[6],
            ),
        ]

    def take_changed(self, chain: int, token: str) -> bool:
        """Whether a transfer or swap touched the token since the last call (and reset that).

        The engine pushes ``holders_metrics`` only for tokens this says changed.
        """
        tok = self._find(chain, token)
        if tok is None or not tok.changed:
            return False
        tok.changed = False
        return True

    def holder_count(self, chain: int, token: str) -> int:
        """Wallets holding a positive balance of the token (0 for an unknown token)."""
        tok = self._find(chain, token)
        return len(tok.balances) if tok is not None else 0

    def balance(self, chain: int, token: str, wallet: str) -> float:
        """A wallet's balance of the token, in token units (0.0 when it holds none)."""
        tok = self._find(chain, token)
        if tok is None:
            return 0.0
        return units(tok.balances.get(wallet, 0), tok.decimals)

    def statistics(self) -> dict[str, int]:
        """Counters for the health endpoint and for tests.

        Returns:
            ``tokens`` listed, ``holders`` (positive balances summed over
            tokens), ``positions`` (PnL books), ``tagged_wallets``, ``transfers``
            seen, of which ``transfers_unknown_token`` (token never listed) and
            ``transfers_zero`` (nothing moved) were ignored and ``overdrafts``
            spent more than the sender was known to hold; ``trades`` (swap legs),
            of which ``trades_unpriced`` had no USD value at all; ``labels``;
            ``native_unknown_chain``.
        """
        every = [t for ch in self._chains.values() for t in ch.tokens.values()]
        tokens = [t for t in every if t.listed]
        return {
            "tokens": len(tokens),
            "holders": sum(len(t.balances) for t in tokens),
            "positions": sum(len(t.positions) for t in every),
            "tagged_wallets": sum(len(ch.tags) for ch in self._chains.values()),
            "transfers": self._transfers,
            "transfers_unknown_token": self._unknown_token,
            "transfers_zero": self._zero_amount,
            "overdrafts": self._overdrafts,
            "trades": self._trades,
            "trades_unpriced": self._unpriced,
            "labels": self._labels,
            "native_unknown_chain": self._unknown_native,
        }

    # -- internals -------------------------------------------------------------------------

    def _chain(self, chain: int) -> _Chain:
        ch = self._chains.get(chain)
        if ch is None:
            ch = self._chains[chain] = _Chain()
        return ch

    def _token(self, chain: int, address: str) -> _Token:
        tokens = self._chain(chain).tokens
        tok = tokens.get(address)
        if tok is None:
            tok = tokens[address] = _Token(chain, address)
        return tok

    def _find(self, chain: int, address: str) -> _Token | None:
        ch = self._chains.get(chain)
        return ch.tokens.get(address) if ch is not None else None

    @staticmethod
    def _tag_pnl(tok: _Token, i: int) -> float | None:
        if not tok.tag_traders[i] or tok.price is None:
            return None
        return tok.tag_realized[i] + tok.tag_qty[i] * tok.price - tok.tag_cost[i]

    @staticmethod
    def _wallet_side(
        tok: _Token, ev: Transfer, wallet: str, change: int, spot: int | None
    ) -> list[WalletUpdate]:
        """The updates of one watched side of a transfer; ``change`` as in :meth:`on_transfer`."""
        chain, ts = ev.chain, ev.ts
        raw = tok.balances.get(wallet, 0)
        out: list[WalletUpdate] = [
            TokenBalance(
                pid=chain,
                wa=wallet,
                ts=ts,
                a=tok.address,
                b=units(raw, tok.decimals),
                hp=_pct(raw, tok.supply()),
                bh=ev.block,
            )
        ]
        if change:
            out.append(
                PositionTime(
                    pid=chain,
                    wa=wallet,
                    ts=ts,
                    a=tok.address,
                    spot=spot,
                    spct=ts if change < 0 else None,
                )
            )
        out.append(LastActive(pid=chain, wa=wallet, ts=ts, lat=ts))
        return out


def _pct(part: int, whole: int) -> float | None:
    """``part`` in % (0–100) of ``whole``, from exact integers; ``None`` when ``whole`` is 0."""
    return quotient(part, whole) * 100.0 if whole else None
