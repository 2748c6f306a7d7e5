"""Which CoinMarketCap id an exchange's base currency is, and what a quote is worth in USD.

The table is the bundled universe's ``coins.csv`` (real CoinMarketCap ids and
tickers): an exchange's unified base code (ccxt's ``BTC`` for Kraken's ``XBT``)
is looked up by ticker, the best-ranked asset winning where two share one.
Extra or corrected entries come in as ``SYMBOL=ID`` pairs (``--asset`` on the
command line); an entry for an id missing from ``coins.csv`` lists it with no
known supply.

Quotes are valued at their peg: ``USD`` is 1, and a stablecoin of the table
(``USDT``, ``USDC``, …) its ``peg_usd``. Markets in any other quote are not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cmcstream.engine.events import AssetListed
from cmcstream.sources.simulator.universe import Universe

__all__ = ["AssetTable", "parse_asset"]


def parse_asset(text: str) -> tuple[str, int]:
    """``SYMBOL=ID`` from the command line, as (upper-case symbol, id)."""
    symbol, sep, cid = text.partition("=")
    if not sep or not symbol.strip() or not cid.strip().isdigit():
        raise ValueError(f"expected SYMBOL=ID, e.g. PEPE=24478, not {text!r}")
    return symbol.strip().upper(), int(cid)


@dataclass(frozen=True, slots=True)
class AssetTable:
    """Tickers to ids, the listing of each id, and the USD value of each usable quote."""

    ids: Mapping[str, int]
    listings: Mapping[int, AssetListed]
    quotes_usd: Mapping[str, float]

    @classmethod
    def build(cls, quotes: Iterable[str], extra: Mapping[str, int] | None = None) -> AssetTable:
        ids: dict[str, int] = {}
        listings: dict[int, AssetListed] = {}
        pegs: dict[str, float] = {"USD": 1.0}
        for a in Universe.real_assets():  # by rank: the first holder of a ticker keeps it
            ids.setdefault(a.symbol.upper(), a.cid)
            listings[a.cid] = a.listing()
            if a.peg is not None:
                pegs.setdefault(a.symbol.upper(), a.peg)
        rank = len(listings)
        for symbol, cid in (extra or {}).items():
            ids[symbol] = cid
            if cid not in listings:
                rank += 1
                listings[cid] = AssetListed(
                    cid=cid,
                    symbol=symbol,
                    name=symbol,
                    rank=rank,
                    circulating_supply=None,
                    max_supply=None,
                    total_supply=None,
                    launch_ts=0,
                    launch_price=None,
                )
        wanted = {q.upper() for q in quotes}
        unknown = sorted(wanted - pegs.keys())
        if unknown:
            raise ValueError(f"no USD value for the quote {', '.join(unknown)}")
        return cls(ids, listings, {q: pegs[q] for q in wanted})

    def cid(self, symbol: str) -> int | None:
        return self.ids.get(symbol.upper())
