"""Included swap legs, taped per run and folded into the reducers a run at a time.

An included swap changes the windows, candles and trader counts of its base
token, its quote token and its pool: folding it into each of them at once would
cost a call per reducer and window, about fifteen per swap. None of those
reducers tells apart two trades of the same run, though (a run: the trades of
one second, see :func:`run_key`). So a swap only appends its values to each
entity's :class:`Tape`; when the entity's run changes, or before anything of it
is read, the tape becomes a :class:`TradeRun` of columns, and each reducer takes
the run in with a few built-in calls over the columns (sums, ``max``/``min``,
set algebra) instead of Python code per trade.

The folds are exact: :data:`~cmcstream.engine.numeric.add_up` adds left to right
from the bucket's total just as ``+=`` per trade does, and the highs and lows
keep what per-trade comparisons kept (:meth:`TradeRun.highest`), so every number
comes out bit for bit as it would trade by trade.
"""

from __future__ import annotations

from itertools import compress
from typing import Any, Final

from cmcstream.engine.units import SECOND_MS

__all__ = ["FIELDS", "Tape", "TradeRun", "run_key"]

FIELDS: Final = 5
"""Values per trade on a :class:`Tape`."""


def run_key(ts: int) -> int:
    """Which run a trade stamped ``ts`` (epoch ms) belongs to; keys grow with time.

    Candles cut time into seconds ``[s, s + 1 s)``, rolling windows read on whole
    seconds into ``(s - 1 s, s]``: a trade on a second's first millisecond ends
    one window second and opens one candle second. So a second splits into two
    runs, that millisecond's trades (key ``2s``) and the rest (key ``2s + 1``),
    and every run lies in one second of each kind.
    """
    return ts // SECOND_MS + (ts + SECOND_MS - 1) // SECOND_MS


class TradeRun:
    """The trades of one run of one entity, in arrival order, as columns.

    Attributes:
        ts: the start of the run's second (epoch ms): its trades are in
            ``[ts, ts + 1 s)``, where candles and interval counts file them.
        end: the whole second its trades lie just before or on: they are in
            ``(end - 1 s, end]``, where rolling windows file them.
        buy_usd: USD value of each buy, in order; ``buy_amount`` their token amounts.
        sell_usd: as ``buy_usd``, for the sells; ``sell_amount`` likewise.
        usd: USD value of every trade, buys and sells, in order.
        prices: the USD price of every trade, in order.
        high: ``max(prices)``; ``low``: ``min(prices)``.
        buyers: distinct traders who bought; ``sellers`` who sold; ``traders`` either.
    """

    __slots__ = (
        "buy_amount",
        "buy_usd",
        "buyers",
        "end",
        "high",
        "low",
        "prices",
        "sell_amount",
        "sell_usd",
        "sellers",
        "traders",
        "ts",
        "usd",
    )

    def __init__(self, key: int, tape: list[Any]) -> None:
        # The tape is flat, FIELDS values per trade: a stride slice is a column.
        buys: list[bool] = tape[0::FIELDS]
        usd: list[float] = tape[1::FIELDS]
        amounts: list[float] = tape[2::FIELDS]
        traders: list[str] = tape[3::FIELDS]
        sells = [not buy for buy in buys]
        self.ts = key // 2 * SECOND_MS
        self.end = (key + 1) // 2 * SECOND_MS
        self.usd = usd
        self.prices: list[float] = tape[4::FIELDS]
        self.high = max(self.prices)
        self.low = min(self.prices)
        self.buy_usd = list(compress(usd, buys))
        self.buy_amount = list(compress(amounts, buys))
        self.sell_usd = list(compress(usd, sells))
        self.sell_amount = list(compress(amounts, sells))
        self.buyers = set(compress(traders, buys))
        self.sellers = set(compress(traders, sells))
        self.traders = set(traders)

    # ``max(a, max(b))`` is ``max(a, *b)``, price by price, unless ``b`` starts with a
    # NaN: nothing compares greater than it, so ``max(b)`` is NaN whatever follows.

    def highest(self, high: float) -> float:
        """``max(high, *prices)``: a bucket's high after this run."""
        top = self.high
        return max(high, top) if top == top else max(high, *self.prices)

    def lowest(self, low: float) -> float:
        """``min(low, *prices)``: a bucket's low after this run."""
        bottom = self.low
        return min(low, bottom) if bottom == bottom else min(low, *self.prices)


class Tape:
    """The trades of one entity not folded yet, all of one run.

    Attributes:
        key: :func:`run_key` of the trades on the tape; -1 once it was taken, so
            the next trade always starts a run.
        trades: the trades, in arrival order, flat: ``buy, usd, amount, trader,
            price`` (amount in token units, price in USD), then the next trade's.
    """

    __slots__ = ("key", "trades")

    def __init__(self) -> None:
        self.key = -1
        self.trades: list[Any] = []

    def take(self) -> TradeRun | None:
        """The taped trades as a run, emptying the tape; None when there are none."""
        trades, key = self.trades, self.key
        self.key = -1
        if not trades:
            return None
        self.trades = []
        return TradeRun(key, trades)
