"""The composition root: a feed and a gateway over one bus, as one process runs them.

``cmcstream serve`` runs both over the in-process bus. Either can also run on
its own over a bus shared between processes, which is how one feed serves
several gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from cmcstream import heap
from cmcstream.bus.base import Bus
from cmcstream.bus.memory import MemoryBus
from cmcstream.clock import Clock
from cmcstream.config import ServerConfig
from cmcstream.feed import Feed
from cmcstream.feed.choices import LazyChoices
from cmcstream.feed.runner import ChargeReport, FeedRunner
from cmcstream.server.gateway import Gateway
from cmcstream.server.store import Store

if TYPE_CHECKING:
    from cmcstream.server.admin import AdminServer
    from cmcstream.server.leases import Leases

__all__ = ["App"]


class App:
    """What one process runs: a feed, a gateway, or both, wired to one bus.

    Args:
        config: the server configuration.
        store: the key store (needed with a gateway; the app does not close it).
        bus: defaults to a :class:`MemoryBus`, which only joins a feed and a
            gateway in this process.
        feed: run the simulated feed here; or what to run in its place, built on
            ``bus``: a feed with another on-chain source, a replay, a relay.
        gateway: run the gateway here.
        clock: the feed's simulated time (see :class:`Feed`).
        wall: real time, for everything on the wire outside payloads.
        leases: the gateway's cluster-wide connection count (see :class:`Gateway`).
    """

    def __init__(
        self,
        config: ServerConfig,
        store: Store | None = None,
        *,
        bus: Bus | None = None,
        feed: bool | FeedRunner = True,
        gateway: bool = True,
        clock: Clock | None = None,
        wall: Clock | None = None,
        leases: Leases | None = None,
    ) -> None:
        if not (feed or gateway):
            raise ValueError("an app runs a feed, a gateway or both")
        self.config = config
        self.bus: Bus = bus if bus is not None else MemoryBus()
        if isinstance(feed, bool):
            self.feed: FeedRunner | None = (
                Feed(config, self.bus, clock=clock, wall=wall) if feed else None
            )
        else:
            self.feed = feed
        self.gateway: Gateway | None = None
        if gateway:
            if store is None:
                raise ValueError("a gateway needs a key store")
            extra = self.feed.health if self.feed is not None else None
            # Without a feed of its own here (a cluster gateway, a replay, a relay), the
            # playground offers the simulated world, which the gateway works out itself.
            choices = self.feed.choices if isinstance(self.feed, Feed) else LazyChoices(config)
            lag = self.feed.lag if isinstance(self.feed, Feed) else None
            self.gateway = Gateway(
                config,
                store,
                self.bus,
                wall=wall,
                health=extra,
                feed_lag=lag,
                leases=leases,
                choices=choices,
            )
            if isinstance(self.feed, ChargeReport):
                self.feed.compare_with(lambda: self._gateway().ledger.charged)
        self._gc: asyncio.Task[None] | None = None
        self.admin: AdminServer | None = None

    async def start(self) -> None:
        """Connect the bus, build the feed's history, then start listening."""
        await self.bus.start()
        if self.feed is not None:
            await self.feed.start()
        if self.gateway is not None:
            await self.gateway.start()
            config = self.config
            if config.admin_port is not None and config.admin_token:
                from cmcstream.server.admin import AdminServer  # the `admin` extra

                admin = AdminServer(
                    self.gateway.store, config.admin_token, config.admin_host, config.admin_port
                )
                try:
                    await admin.start()
                except BaseException:
                    await self.shutdown()  # a port in use: nothing stays listening
                    raise
                self.admin = admin
        if self.config.tune_gc:
            # Once the long-lived start-up state (history, the DEX world) is built.
            self._gc = asyncio.get_running_loop().create_task(self._collect(heap.settle()))

    async def shutdown(self) -> None:
        """Stop the feed, close the gateway's connections, save usage, release the bus."""
        if self._gc is not None:
            self._gc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc
        if self.admin is not None:
            await self.admin.aclose()
        if self.feed is not None:
            await self.feed.stop()
        if self.gateway is not None:
            await self.gateway.shutdown()
        await self.bus.aclose()

    @staticmethod
    async def _collect(collector: heap.Collector) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            collector.tick(loop.time())

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await stop.wait()
        await self.shutdown()

    # -- what tests, benchmarks and the banner read -------------------------------------------

    def _gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("this app runs no gateway")
        return self.gateway

    def _feed(self) -> FeedRunner:
        if self.feed is None:
            raise RuntimeError("this app runs no feed")
        return self.feed

    @property
    def url(self) -> str:
        return self._gateway().url

    @property
    def port(self) -> int:
        return self._gateway().port

    def health(self) -> dict[str, Any]:
        if self.gateway is not None:
            return self.gateway.health()
        return self._feed().health()
