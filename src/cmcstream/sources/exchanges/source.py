"""Centralized exchanges through ccxt as the market source (``serve --source exchanges``).

ccxt's ``pro`` clients speak each exchange's WebSocket protocol; this module
only subscribes (``watch_trades``), turns each trade into USD, and hands it to
the :class:`~cmcstream.sources.exchanges.venues.VenueBook`, whose prints are
the :class:`~cmcstream.engine.events.Trade` events the engine prices from.
The history behind ``p24h``…``pall`` is back-filled from ``fetch_ohlcv``
(daily, hourly and five-minute bars, coarse first).

Trades are stamped with the time they arrive here, not the exchange's: venues'
clocks differ, and a venue's staleness is about when we last heard from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cmcstream.engine.events import MarketEvent, PriceSeries
from cmcstream.engine.units import DAY_MS, HOUR_MS, MINUTE_MS
from cmcstream.sources.exchanges.assets import AssetTable
from cmcstream.sources.exchanges.venues import VenueBook, VenueRules
from cmcstream.tasks import cancel_all

__all__ = ["HISTORY", "ExchangeSource", "Market", "ohlcv_series", "override_urls"]

logger = logging.getLogger(__name__)

HISTORY: tuple[tuple[str, int, int], ...] = (
    ("1d", DAY_MS, 400),  # the 1 y and year-to-date references
    ("1h", HOUR_MS, 200),  # the 7 d reference
    ("5m", 5 * MINUTE_MS, 300),  # the 24 h reference and volume
)
"""(ccxt timeframe, bar length, bars) back-filled per asset, coarse first."""

_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def override_urls(urls: dict[str, Any], path: str, url: str) -> None:
    """Set ``urls['api'][a][b]…`` for the dotted ``path`` ``a.b…`` (``ws.publicV2``)."""
    node = urls.setdefault("api", {})
    *parents, leaf = path.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = url


class Market:
    """One market (``BTC/USDT`` on one venue) the source follows."""

    __slots__ = ("cid", "rate", "symbol", "venue")

    def __init__(self, venue: str, symbol: str, cid: int, rate: float) -> None:
        self.venue = venue
        self.symbol = symbol
        self.cid = cid
        self.rate = rate  # USD per unit of the quote


class ExchangeSource:
    """The market side from exchanges: back-filled history, then live prints.

    Args:
        exchanges: ccxt exchange ids (``binance``, ``kraken``, …), each one venue.
        symbols: base tickers to follow (``BTC``, ``ETH``); every market of
            each in one of ``quotes`` is subscribed on every venue that lists it.
        quotes: quote currencies used, valued at their USD peg.
        assets: the ticker → CoinMarketCap id table; the bundled one by default.
        rules: how venues are combined.
        urls: per exchange id, ``{"dotted.path": url}`` written into the ccxt
            client's ``urls['api']`` (a proxy, a testnet, a loopback recording).
        client_config: settings for every ccxt client, over the default
            ``{"enableRateLimit": True}`` (a recording needs no throttle).
        options: per exchange id, entries for that client's ccxt ``options``
            (``{"binance": {"fetchMarkets": {"types": ["spot"]}}}``).
        clock: epoch ms now; the wall clock by default.
    """

    def __init__(
        self,
        exchanges: Sequence[str],
        symbols: Sequence[str],
        quotes: Sequence[str] = ("USD", "USDT", "USDC"),
        *,
        assets: AssetTable | None = None,
        rules: VenueRules | None = None,
        urls: Mapping[str, Mapping[str, str]] | None = None,
        client_config: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        if not exchanges:
            raise ValueError("name at least one exchange")
        self.exchange_ids = list(dict.fromkeys(exchanges))
        self.symbols = [s.upper() for s in dict.fromkeys(symbols)]
        self.assets = assets if assets is not None else AssetTable.build(quotes)
        self.quotes = [q.upper() for q in quotes]
        self.book = VenueBook(rules)
        self._urls = urls or {}
        self._client_config = {"enableRateLimit": True, **(client_config or {})}
        self._options = options or {}
        self._clock = clock
        self.clients: dict[str, Any] = {}
        self.markets: list[Market] = []
        self._history: list[PriceSeries] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0  # trades taken from the venues
        self._arrived = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect every venue, load its markets and the history, then follow the trades."""
        try:
            import ccxt.pro as ccxtpro
        except ImportError as exc:  # the CLI checks first; this guards library use
            raise RuntimeError(
                "the exchange source needs: pip install 'cmcstream[exchanges]'"
            ) from exc
        for ex_id in self.exchange_ids:
            cls = getattr(ccxtpro, ex_id, None)
            if cls is None:
                raise ValueError(f"ccxt has no WebSocket client for {ex_id!r}")
            config = dict(self._client_config)
            extra = self._options.get(ex_id)
            if extra:
                config["options"] = {**config.get("options", {}), **extra}
            client = cls(config)
            for path, url in self._urls.get(ex_id, {}).items():
                override_urls(client.urls, path, url)
            self.clients[ex_id] = client
        try:
            await asyncio.gather(*(c.load_markets() for c in self.clients.values()))
            self.markets = self._pick_markets()
            if not self.markets:
                raise ValueError(
                    f"none of {', '.join(self.symbols)} trades against"
                    f" {', '.join(self.quotes)} on {', '.join(self.exchange_ids)}"
                )
            self._history = await self._fetch_history(self._clock())
        except BaseException:
            await self.aclose()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(m), name=f"{m.venue}:{m.symbol}") for m in self.markets
        ]

    async def aclose(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self.clients = {}

    def health(self) -> dict[str, Any]:
        """For ``GET /health``: the markets followed, trades taken, venue prices left out."""
        return {
            "source": "exchanges",
            "markets": [f"{m.venue}:{m.symbol}" for m in self.markets],
            "trades": self.received,
            "outliers": self.book.rejected,
        }

    # -- the Source interface ----------------------------------------------------------------

    def backfill(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[MarketEvent]:
        cids = sorted({m.cid for m in self.markets})
        for cid in cids:
            yield self.assets.listings[cid]
        for series in self._history:
            if series.start_ts < until_ms:
                yield series

    def step(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[MarketEvent]:
        return self.book.prints(until_ms)

    # -- markets -----------------------------------------------------------------------------

    def _pick_markets(self) -> list[Market]:
        picked = []
        for venue, client in self.clients.items():
            for base in self.symbols:
                cid = self.assets.cid(base)
                if cid is None:
                    logger.warning("%s is not in the asset table; add it with --asset", base)
                    continue
                for quote in self.quotes:
                    symbol = f"{base}/{quote}"
                    market = client.markets.get(symbol)
                    if market is None or not market.get("spot") or market.get("active") is False:
                        continue
                    picked.append(Market(venue, symbol, cid, self.assets.quotes_usd[quote]))
        return picked

    async def _fetch_history(self, until_ms: int) -> list[PriceSeries]:
        """Each asset's bars from the first venue (in ``--exchange`` order) that has them."""
        by_cid: dict[int, list[Market]] = {}
        for m in self.markets:
            by_cid.setdefault(m.cid, []).append(m)
        out: list[PriceSeries] = []
        for timeframe, res_ms, bars in HISTORY:
            jobs = [
                self._first_series(markets, timeframe, res_ms, bars, until_ms)
                for markets in by_cid.values()
            ]
            out.extend(s for s in await asyncio.gather(*jobs) if s is not None)
        return out

    async def _first_series(
        self, markets: list[Market], timeframe: str, res_ms: int, bars: int, until_ms: int
    ) -> PriceSeries | None:
        for m in markets:
            if timeframe in (self.clients[m.venue].timeframes or {}):
                series = await self._series(m, timeframe, res_ms, bars, until_ms)
                if series is not None:
                    return series
        return None

    async def _series(
        self, m: Market, timeframe: str, res_ms: int, bars: int, until_ms: int
    ) -> PriceSeries | None:
        client = self.clients[m.venue]
        since = (until_ms // res_ms - bars) * res_ms
        try:
            rows = await client.fetch_ohlcv(m.symbol, timeframe, since, bars)
        except Exception as exc:
            logger.warning("no %s history of %s on %s: %s", timeframe, m.symbol, m.venue, exc)
            return None
        return ohlcv_series(m.cid, res_ms, rows, m.rate, until_ms)

    async def wait_received(self, count: int) -> None:
        """Until ``count`` trades came from the venues in all (bound it with asyncio.timeout)."""
        while self.received < count:
            self._arrived.clear()
            await self._arrived.wait()

    # -- live trades -------------------------------------------------------------------------

    async def _follow(self, m: Market) -> None:
        """Every trade of one market into the book; ccxt reconnects, this retries on errors."""
        client = self.clients[m.venue]
        failures = 0
        while True:
            try:
                trades = await client.watch_trades(m.symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                logger.warning("%s %s: %s; again in %g s", m.venue, m.symbol, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.take(m, trades)

    def take(self, m: Market, trades: Iterable[Mapping[str, Any]]) -> None:
        """ccxt's unified trades of market ``m`` into the book, stamped now."""
        now = self._clock()
        add = self.book.add
        n = 0
        for t in trades:
            price = t.get("price")
            amount = t.get("amount")
            if price is None or amount is None:
                continue
            cost = t.get("cost")
            quote_volume = float(cost) if cost is not None else float(price) * float(amount)
            add(m.venue, m.cid, now, float(price) * m.rate, quote_volume * m.rate)
            n += 1
        self.received += n
        self._arrived.set()


def ohlcv_series(
    cid: int, res_ms: int, rows: Sequence[Sequence[Any]], rate: float, until_ms: int
) -> PriceSeries | None:
    """ccxt OHLCV rows as one gap-free series: a missing bar repeats the close, with no volume."""
    bars = sorted(
        (int(r[0]) // res_ms * res_ms, float(r[4]), float(r[5] or 0.0))
        for r in rows
        if r[4] is not None and int(r[0]) < until_ms
    )
    if not bars:
        return None
    start = bars[0][0]
    closes: list[float] = []
    volumes: list[float] = []
    for ts, close, base_volume in bars:
        while start + len(closes) * res_ms < ts:
            closes.append(closes[-1])
            volumes.append(0.0)
        if start + len(closes) * res_ms > ts:  # a duplicate bar: the later row wins
            closes.pop()
            volumes.pop()
        closes.append(close * rate)
        volumes.append(close * base_volume * rate)
    return PriceSeries(
        cid=cid, resolution_ms=res_ms, start_ts=start, closes=closes, volumes_usd=volumes
    )
