"""The simulated coin universe: real CoinMarketCap ids on top, a seeded long tail below.

The head of the universe comes from ``data/coins.csv``, shipped with the
package: real CoinMarketCap ids, symbols and names of about two hundred large
assets, so clients can subscribe with the ids they use against the real
service (1 BTC, 1027 ETH, 825 USDT, …). The market figures in it are a
plausible snapshot for a simulator (BTC at the documentation's 81,187.93 USD),
not a record of any real day; ranks follow from those figures.

``coins.csv`` columns (one asset per row, comma-separated, header first):

=====================  ==========================================================
``cid``                CoinMarketCap cryptocurrency id.
``rank``               rank by market cap, 1 = largest; unique, 1..n.
``symbol``             ticker.
``name``               display name.
``price_usd``          current price, USD.
``circulating_supply`` coins in circulation.
``total_supply``       coins in existence; empty when unknown.
``max_supply``         hard cap in coins; empty when uncapped.
``volume_24h_usd``     typical 24 h trading volume, USD.
``volatility``         annualised volatility of log returns (0.5 = 50 %).
``launch_date``        ``YYYY-MM-DD`` (UTC) of the first known price.
``launch_price_usd``   first known price, USD (the all-time change reference).
``supply_growth``      yearly growth of the circulating supply (0.02 = 2 %/yr).
``peg_usd``            USD value a stablecoin is pegged to; empty otherwise.
=====================  ==========================================================

``data/anchors.csv`` holds public reference prices of the top coins (the year
open, the price three months and a year before the snapshot, and for Bitcoin
every reference of the documentation's example push), one
``cid,time_utc,price_usd,source`` row each, with their provenance in the
file's header. They become :attr:`Asset.anchors`; the market simulator's
history passes through them.

:meth:`Universe.load` adds generated assets after the real ones, up to the
requested size: ids from :data:`GENERATED_ID_BASE` up (no real id is that
high), made-up symbols and names, ranks continuing after the real ones, market
caps falling with rank, and higher volatility. About one in
:data:`UNKNOWN_SUPPLY_ONE_IN` generated assets has no known supply (as many
small listings on CoinMarketCap do), so everything derived from the supply is
null for it. The same seed gives the same universe.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from cmcstream.engine.events import AssetListed

__all__ = ["GENERATED_ID_BASE", "UNKNOWN_SUPPLY_ONE_IN", "Asset", "Universe"]

GENERATED_ID_BASE = 100_000
"""First id of a generated asset; real CoinMarketCap ids in the CSV stay below it."""

UNKNOWN_SUPPLY_ONE_IN = 12
"""About one generated asset in this many has an unknown supply (about 8 %)."""

_COLUMNS = (
    "cid",
    "rank",
    "symbol",
    "name",
    "price_usd",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "volume_24h_usd",
    "volatility",
    "launch_date",
    "launch_price_usd",
    "supply_growth",
    "peg_usd",
)

_SYLLABLES = tuple(c + v for c in "bdfklmnprstvxz" for v in "aeiou")
_NAME_SUFFIXES = ("", "", "", " Protocol", " Network", " Finance", " Chain", " AI", " DAO")
_TAIL_LAUNCH_FROM = datetime(2018, 1, 1, tzinfo=UTC)
_TAIL_LAUNCH_TO = datetime(2024, 12, 31, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Asset:
    """One asset of the simulated universe, as of the moment the simulation starts.

    Attributes:
        cid: CoinMarketCap id (real) or an id from :data:`GENERATED_ID_BASE` up.
        rank: rank by market cap, 1 = largest.
        symbol: ticker.
        name: display name.
        price: current price, USD.
        circulating_supply: coins in circulation, or ``None`` when unknown
            (then the total and maximum supply are unknown too).
        total_supply: coins in existence, or ``None`` when unknown.
        max_supply: hard cap in coins, or ``None`` when uncapped.
        volume_24h: typical 24 h volume, USD.
        volatility: annualised volatility of log returns.
        launch_ts: epoch ms of the first known price.
        launch_price: first known price, USD.
        supply_growth: yearly growth of the circulating supply, as a fraction.
        peg: USD peg of a stablecoin, or ``None`` for a free-floating asset.
        generated: ``True`` for a made-up tail asset.
        anchors: public reference prices as ``(epoch ms, USD)``, oldest first;
            the simulated history passes through those it covers.
        market_cap: price × circulating supply, USD (kept for the ranking of
            an asset whose supply is unknown).
    """

    cid: int
    rank: int
    symbol: str
    name: str
    price: float
    circulating_supply: float | None
    total_supply: float | None
    max_supply: float | None
    volume_24h: float
    volatility: float
    launch_ts: int
    launch_price: float
    supply_growth: float
    peg: float | None
    generated: bool = False
    anchors: tuple[tuple[int, float], ...] = ()
    market_cap: float = 0.0

    def __post_init__(self) -> None:
        if self.circulating_supply is not None:
            object.__setattr__(self, "market_cap", self.price * self.circulating_supply)

    def listing(self) -> AssetListed:
        """The event that lists this asset (its price history comes separately)."""
        return AssetListed(
            cid=self.cid,
            symbol=self.symbol,
            name=self.name,
            rank=self.rank,
            circulating_supply=self.circulating_supply,
            max_supply=self.max_supply,
            total_supply=self.total_supply,
            launch_ts=self.launch_ts,
            launch_price=self.launch_price,
        )


def _opt_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _date_ms(text: str) -> int:
    day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(day.timestamp()) * 1000


def _parse_csv(text: str) -> tuple[Asset, ...]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"coins.csv: expected columns {_COLUMNS}, got {reader.fieldnames}")
    assets = []
    for line, row in enumerate(reader, start=2):
        try:
            assets.append(
                Asset(
                    cid=int(row["cid"]),
                    rank=int(row["rank"]),
                    symbol=row["symbol"],
                    name=row["name"],
                    price=float(row["price_usd"]),
                    circulating_supply=float(row["circulating_supply"]),
                    total_supply=_opt_float(row["total_supply"]),
                    max_supply=_opt_float(row["max_supply"]),
                    volume_24h=float(row["volume_24h_usd"]),
                    volatility=float(row["volatility"]),
                    launch_ts=_date_ms(row["launch_date"]),
                    launch_price=float(row["launch_price_usd"]),
                    supply_growth=float(row["supply_growth"]),
                    peg=_opt_float(row["peg_usd"]),
                )
            )
        except ValueError as exc:
            raise ValueError(f"coins.csv line {line}: {exc}") from exc
    return tuple(sorted(assets, key=lambda a: a.rank))


def _parse_anchors(text: str) -> dict[int, tuple[tuple[int, float], ...]]:
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.DictReader(rows)
    by_cid: dict[int, list[tuple[int, float]]] = {}
    for line, row in enumerate(reader, start=2):
        try:
            when = datetime.fromisoformat(row["time_utc"]).astimezone(UTC)
            price = float(row["price_usd"])
            if price <= 0.0:
                raise ValueError(f"price must be positive, got {price}")
            point = (int(when.timestamp() * 1000), price)
            by_cid.setdefault(int(row["cid"]), []).append(point)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"anchors.csv row {line}: {exc}") from exc
    return {cid: tuple(sorted(points)) for cid, points in by_cid.items()}


@cache
def _real_assets() -> tuple[Asset, ...]:
    data = resources.files(__package__).joinpath("data")
    assets = _parse_csv(data.joinpath("coins.csv").read_text("utf-8"))
    anchors = _parse_anchors(data.joinpath("anchors.csv").read_text("utf-8"))
    return tuple(replace(a, anchors=anchors.get(a.cid, ())) for a in assets)


def _made_up_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables))


def _generate_tail(real: Sequence[Asset], count: int, seed: int) -> list[Asset]:
    if count <= 0:
        return []
    rng = random.Random(seed)
    last = real[-1] if real else None
    rank0 = last.rank if last is not None else 0
    # The tail starts just under the smallest real asset and thins out like a
    # power law in rank, as market caps do.
    cap0 = 0.95 * last.market_cap if last is not None else 5e7
    ranks = range(rank0 + 1, rank0 + count + 1)
    caps = sorted(
        (
            min(cap0, cap0 * (r / max(rank0, 1)) ** -1.3 * math.exp(rng.gauss(0.0, 0.15)))
            for r in ranks
        ),
        reverse=True,
    )
    taken = {a.symbol.upper() for a in real}
    unknown = random.Random(f"unknown supply {seed}")
    launch_lo = int(_TAIL_LAUNCH_FROM.timestamp()) * 1000
    launch_hi = int(_TAIL_LAUNCH_TO.timestamp()) * 1000
    tail = []
    for i, (rank, cap) in enumerate(zip(ranks, caps, strict=True)):
        while True:
            word = _made_up_word(rng, rng.choice((2, 2, 3)))
            symbol = word[: rng.choice((3, 4, 4, 5))].upper()
            if symbol not in taken:
                taken.add(symbol)
                break
        price = 10 ** rng.uniform(-5.0, 1.7)
        circulating = cap / price
        max_supply = circulating * rng.uniform(1.0, 3.0) if rng.random() < 0.5 else None
        if max_supply is not None:
            total_supply: float | None = rng.uniform(circulating, max_supply)
        elif rng.random() < 0.4:
            total_supply = circulating * rng.uniform(1.0, 1.5)
        else:
            total_supply = None
        turnover = min(max(0.05 * math.exp(rng.gauss(0.0, 0.8)), 0.002), 1.5)
        growth = rng.uniform(0.01, 0.15) if rng.random() < 0.3 else 0.0
        # Drawn from its own generator, so the rest of the tail stays as it was.
        supply_known = unknown.randrange(UNKNOWN_SUPPLY_ONE_IN) != 0
        tail.append(
            Asset(
                cid=GENERATED_ID_BASE + i,
                rank=rank,
                symbol=symbol,
                name=word.capitalize() + rng.choice(_NAME_SUFFIXES),
                price=price,
                circulating_supply=circulating if supply_known else None,
                total_supply=total_supply if supply_known else None,
                max_supply=max_supply if supply_known else None,
                volume_24h=cap * turnover,
                volatility=rng.uniform(0.9, 2.0),
                launch_ts=rng.randrange(launch_lo, launch_hi) // 86_400_000 * 86_400_000,
                launch_price=price * math.exp(rng.gauss(0.0, 1.5)),
                supply_growth=growth if supply_known else 0.0,
                peg=None,
                generated=True,
                market_cap=cap,
            )
        )
    return tail


class Universe:
    """An ordered set of assets, by rank.

    Args:
        assets: the assets; ids must be unique.

    Raises:
        ValueError: on a duplicate id.
    """

    def __init__(self, assets: Sequence[Asset]) -> None:
        self._assets = tuple(sorted(assets, key=lambda a: a.rank))
        self._by_cid = {a.cid: a for a in self._assets}
        if len(self._by_cid) != len(self._assets):
            raise ValueError("asset ids must be unique")

    @classmethod
    def load(cls, size: int = 5000, seed: int = 0) -> Universe:
        """The real assets of ``coins.csv``, then a generated tail up to ``size``.

        Args:
            size: number of assets; below the number of real ones, the top
                ``size`` real assets.
            seed: seed of the generated tail.

        Raises:
            ValueError: when ``size`` is negative.
        """
        if size < 0:
            raise ValueError("size must not be negative")
        real = _real_assets()[:size]
        return cls([*real, *_generate_tail(real, size - len(real), seed)])

    @staticmethod
    def real_assets() -> tuple[Asset, ...]:
        """The assets of ``coins.csv``, by rank."""
        return _real_assets()

    @property
    def assets(self) -> tuple[Asset, ...]:
        """All assets, by rank."""
        return self._assets

    def get(self, cid: int) -> Asset | None:
        """The asset with id ``cid``, or ``None``."""
        return self._by_cid.get(cid)

    def __contains__(self, cid: object) -> bool:
        return cid in self._by_cid

    def __len__(self) -> int:
        return len(self._assets)

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._assets)
