"""The feed: the tick loops, interest from the bus, and the pushes they publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from cmcstream.bus.base import Bus
from cmcstream.clock import Clock, SimClock, SystemClock
from cmcstream.config import ServerConfig
from cmcstream.engine import build as engine_build
from cmcstream.engine.events import DexEvent, MarketEvent
from cmcstream.engine.market import MarketEngine
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.feed.choices import (
    AssetChoice,
    Choices,
    engine_choices,
    market_choices,
    world_choices,
)
from cmcstream.feed.market import MARKET_CHANNEL, MarketFeed
from cmcstream.feed.onchain import OnchainFeed
from cmcstream.feed.publisher import Publisher
from cmcstream.protocol.channels import ChannelRegistry
from cmcstream.sources.base import Source
from cmcstream.sources.simulator.dex import DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.market import MarketSimulator
from cmcstream.sources.simulator.reference_prices import ReferencePrices
from cmcstream.sources.simulator.universe import Universe
from cmcstream.tasks import cancel_all

__all__ = ["Feed", "LiveMarket", "LiveSource"]

logger = logging.getLogger(__name__)


@runtime_checkable
class LiveSource(Source[DexEvent], Protocol):
    """A DEX source that is pushed to (a chain): the feed starts it and steps when it is ready.

    Its history may change (a chain reorganizes): :meth:`take_rewind` tells the
    feed that events already handed out were taken back, and :meth:`history`
    is what still stands, from which the feed rebuilds the on-chain engine.
    """

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def wait(self) -> None: ...

    def take_rewind(self) -> bool: ...

    def history(self) -> Sequence[DexEvent]: ...


@runtime_checkable
class LiveMarket(Source[MarketEvent], Protocol):
    """A market source that connects somewhere (exchanges): started before its back-fill."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


class Feed:
    """Sources through the engines onto the bus, for the topics some gateway watches.

    Args:
        config: the simulated market and DEX world, and their cadences.
        bus: where pushes go and interest comes from.
        clock: simulated time; defaults to a :class:`SimClock` at ``config.speed``.
            It drives the sources and the times inside payloads.
        wall: real time, for the push envelope's ``ts``; the system clock by default.
        dex: the on-chain source instead of the DEX simulator (a chain: see
            :class:`LiveSource`); its events are real time, so ``clock``
            defaults to the system clock then.
        market: the market source instead of the market simulator (exchanges:
            see :class:`LiveMarket`); real time too.
    """

    def __init__(
        self,
        config: ServerConfig,
        bus: Bus,
        *,
        clock: Clock | None = None,
        wall: Clock | None = None,
        dex: Source[DexEvent] | None = None,
        market: Source[MarketEvent] | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        if clock is None:
            simulated = dex is None and market is None
            clock = SimClock(config.speed, config.start_ms) if simulated else SystemClock()
        self.clock: Clock = clock
        self.wall: Clock = wall if wall is not None else SystemClock()
        self.registry = ChannelRegistry()
        self.publisher = Publisher(bus)
        self.universe = Universe.load(config.universe_size, seed=config.seed)
        self.lag_s: dict[str, float] = {}
        self.simulator: MarketSimulator | None = None
        if market is None:
            market = self.simulator = MarketSimulator(
                self.universe,
                seed=config.seed,
                step_ms=config.fast_cadence_ms,
            )
        self.market = MarketFeed(
            market,
            MarketEngine(
                fast_cadence_ms=config.fast_cadence_ms,
                slow_cadence_ms=config.slow_cadence_ms,
                fast_rank_max=config.fast_rank_max,
            ),
            self.publisher,
        )
        self.world: DexWorld | None = None
        if dex is None:
            self.world = DexWorld.build(config.seed)
            dex = DexSimulator(self.world, seed=config.seed, activity=config.dex_activity)
        self.dex: Source[DexEvent] = dex
        self._prices: dict[int, float] = {}
        self.onchain = OnchainFeed(
            self.dex,
            OnchainEngine(self._quote_price, metric_period_ms=config.metric_period_ms),
            self.publisher,
            self.wall.now_ms,
        )
        self._choices: Choices | None = None
        self._assets: tuple[AssetChoice, ...] | None = None
        self.origin_ms = 0  # where the backfilled history ends; set in start()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def engine(self) -> MarketEngine:
        return self.market.engine

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the history, then follow interest and run the tick loops."""
        if isinstance(self.market.source, LiveMarket):
            await self.market.source.start()
        # History ends on a cadence boundary, so a fixed --start and --seed give
        # the same market whatever the machine took to get here.
        now_ms = self.clock.now_ms()
        self.origin_ms = now_ms - now_ms % self.config.fast_cadence_ms
        past = ReferencePrices(token.cmc_id for token in REFERENCE_TOKENS)
        self.market.backfill(self.origin_ms, past.observe)
        if isinstance(self.dex, LiveSource):
            await self.dex.start()
        if isinstance(self.dex, DexSimulator) and self.config.dex_warm_up:
            # A week of DEX history, priced as the market was then: every window is full.
            batches: Iterable[tuple[Mapping[int, float], Iterable[DexEvent]]] = self.dex.warm_up(
                self.origin_ms, past.at
            )
        else:
            prices = self._reference_prices(self.origin_ms)
            batches = [(prices, self.dex.backfill(self.origin_ms, prices))]
        for quotes, events in batches:
            self._prices = dict(quotes)
            self.onchain.engine.apply_many(events)
        self.bus.set_interest(self._watch, self._unwatch)
        loop = asyncio.get_running_loop()
        cadence, step = self.config.fast_cadence_ms, self.config.onchain_step_ms
        self._loops = [
            loop.create_task(
                self._every(cadence, cadence, self._market_tick, "market tick"), name="market"
            ),
            # The DEX world steps every simulated second (its interval closes need it).
            loop.create_task(
                self._every(step, 10 * step, self._onchain_step, "on-chain step"), name="onchain"
            ),
        ]
        if isinstance(self.dex, LiveSource):
            self._loops.append(loop.create_task(self._follow(self.dex), name="onchain-live"))

    async def stop(self) -> None:
        await cancel_all(self._loops)
        self._loops = []
        if isinstance(self.dex, LiveSource):
            await self.dex.aclose()
        if isinstance(self.market.source, LiveMarket):
            await self.market.source.aclose()

    def lag(self) -> dict[str, float]:
        """Wall seconds each loop ran behind its due time when it last ran."""
        return dict(self.lag_s)

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {"engine": engine_build(), "published": self.publisher.published}
        if isinstance(self.market.source, LiveMarket):
            health["market"] = self.market.source.health()
        else:
            health["simulator"] = {
                "seed": self.config.seed,
                "universe_size": self.config.universe_size,
            }
        return health

    async def choices(self) -> Choices:
        """What the playground offers: the simulated world's, or what a chain listed so far."""
        if self._choices is not None:
            return self._choices
        if self.world is not None:
            self._choices = world_choices(self.universe, self.world)
            return self._choices
        if self._assets is None:
            self._assets = market_choices(self.universe)
        return engine_choices(self._assets, self.onchain.engine)

    # -- interest ----------------------------------------------------------------------------

    def _watch(self, topic: str) -> None:
        sub = self.registry.subscription_of(topic)
        if sub is None:
            logger.warning("ignoring interest in %r, which is not a topic", topic)
            return
        self.publisher.watch(sub)
        if sub.channel == MARKET_CHANNEL:
            self.market.watch(sub)
        else:
            self.onchain.watch(sub, self.clock.now_ms())

    def _unwatch(self, topic: str) -> None:
        sub = self.registry.subscription_of(topic)
        if sub is None:
            return
        self.publisher.unwatch(topic)
        if sub.channel == MARKET_CHANNEL:
            self.market.unwatch(sub)
        else:
            self.onchain.unwatch(sub)

    # -- the loops ---------------------------------------------------------------------------

    async def _every(
        self, period_ms: int, lag_limit_ms: int, action: Callable[[int], object], name: str
    ) -> None:
        """Call ``action(t)`` at every multiple ``t`` of ``period_ms`` of simulated time.

        When the loop falls more than ``lag_limit_ms`` behind (a very high
        ``--speed``), it skips to the latest boundary rather than replaying a
        backlog the clients no longer want.
        """
        due = self.origin_ms + period_ms
        while True:
            await asyncio.sleep(self.clock.wall_delay(due - self.clock.now_ms()))
            now_ms = self.clock.now_ms()
            self.lag_s[name] = self.clock.wall_delay(now_ms - due)
            if now_ms - due > lag_limit_ms:
                due = now_ms - now_ms % period_ms
            try:
                action(due)
            except Exception:
                logger.exception("%s at %d failed", name, due)
            due += period_ms

    def _market_tick(self, tick_ms: int) -> int:
        published = self.market.tick(tick_ms, self.wall.now_ms())
        # Written now rather than on the next loop pass, which may be behind
        # an on-chain step that became due at the same instant.
        self.publisher.flush()
        return published

    def _onchain_step(self, step_ms: int) -> int:
        prices = self._reference_prices(step_ms)
        if isinstance(self.dex, LiveSource) and self.dex.take_rewind():
            self._rebuild_onchain(self.dex, step_ms)
        return self.onchain.step(step_ms, prices)

    # -- a live source -----------------------------------------------------------------------

    async def _follow(self, source: LiveSource) -> None:
        """Step as soon as the source has events, rather than at the next tick."""
        while True:
            await source.wait()
            try:
                self._onchain_step(self.clock.now_ms())
            except Exception:
                logger.exception("on-chain step failed")

    def _rebuild_onchain(self, source: LiveSource, now_ms: int) -> None:
        """A fresh engine from what still stands of the source's history, watching as before."""
        old = self.onchain.engine
        engine = OnchainEngine(self._quote_price, metric_period_ms=self.config.metric_period_ms)
        engine.apply_many(source.history())
        for topic in old.watched:
            sub = self.registry.subscription_of(topic)
            if sub is not None:
                engine.watch(sub, now_ms)
        self.onchain.engine = engine

    def _reference_prices(self, at_ms: int) -> dict[int, float]:
        """Read once per on-chain step; the engine prices quote tokens with them."""
        self._prices = dict(self.market.reference_prices(at_ms))
        return self._prices

    def _quote_price(self, cmc_id: int) -> float | None:
        return self._prices.get(cmc_id)
