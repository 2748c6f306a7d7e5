"""An in-process server on 127.0.0.1 and a free port, for tests.

Example::

    async with running_server(speed=100) as node:
        async with websockets.connect(node.url, additional_headers={HEADER: node.demo_key}):
            ...
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from cmcstream.app import App
from cmcstream.bus.base import Bus
from cmcstream.bus.memory import MemoryBus
from cmcstream.config import ServerConfig
from cmcstream.engine.events import DexEvent, MarketEvent
from cmcstream.feed import Feed
from cmcstream.feed.runner import FeedRunner
from cmcstream.server.gateway import Gateway
from cmcstream.server.keystore import KeyStore
from cmcstream.server.store import Store
from cmcstream.sources.base import Source

__all__ = ["RunningNode", "running_server"]


class RunningNode(App):
    """An :class:`App` running a feed and a gateway, with a ready-made active Startup key.

    The gateway's and the feed's parts are reachable directly (``node.hub``,
    ``node.world``, …), as tests look at both.
    """

    demo_key: str
    gateway: Gateway
    feed: Feed

    def __getattr__(self, name: str) -> Any:
        for part in ("gateway", "feed"):
            owner = self.__dict__.get(part)
            if owner is not None and hasattr(owner, name):
                return getattr(owner, name)
        raise AttributeError(name)


@contextlib.asynccontextmanager
async def running_server(
    config: ServerConfig | None = None,
    *,
    store: Store | None = None,
    dex: Source[DexEvent] | None = None,
    feed: Callable[[ServerConfig, Bus], FeedRunner] | None = None,
    market: Source[MarketEvent] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningNode]:
    """Start a server on ``127.0.0.1:0``; shut it down gracefully on exit.

    Args:
        config: base configuration (defaults suit tests: a 600-asset market,
            no DEX warm-up).
        store: a key store; defaults to a fresh in-memory one.
        dex: an on-chain source in place of the DEX simulator (a chain).
        feed: builds what runs in place of the feed (a replay, a relay) on the node's bus.
        market: a market source in place of the market simulator (exchanges).
        overrides: :class:`ServerConfig` fields to replace (``port`` included;
            the host is always 127.0.0.1).
    """
    # No DEX warm-up by default: tests start servers by the hundred.
    base = config or ServerConfig(universe_size=600, dex_warm_up=False)
    # A port may be given to start again where a stopped server listened.
    config = dataclasses.replace(base, **{"host": "127.0.0.1", "port": 0, **overrides})
    own_store = store is None
    store = store if store is not None else KeyStore(":memory:")
    if feed is not None:
        bus = MemoryBus()
        node = RunningNode(config, store, bus=bus, feed=feed(config, bus))
    elif dex is None and market is None:
        node = RunningNode(config, store)
    else:
        bus = MemoryBus()
        node = RunningNode(config, store, bus=bus, feed=Feed(config, bus, dex=dex, market=market))
    node.demo_key = store.create(plan="startup", name="test").key
    await node.start()
    try:
        yield node
    finally:
        await node.shutdown()
        if own_store:
            store.close()
