"""A relay in front of an upstream server (CoinMarketCap, or another cmcstream).

Local clients connect to the local gateway with local keys; the relay holds
one upstream subscription per topic some local client watches, however many
do. It learns interest from the bus like any feed, subscribes upstream with
the project's client (which spreads subscriptions over connections within the
upstream's ``sub_limit``, reconnects and restores them), and publishes every
upstream push on the local bus, re-stamped with the local send time.

- Topics watched at once that share a channel and scalar params go upstream
  as one request.
- A topic nobody watches any more is unsubscribed upstream after ``linger_s``:
  a client that reconnects or flips back within that time costs no new
  upstream subscription (each one is charged) and misses nothing.
- Topics beyond the upstream's capacity (connections × ``sub_limit``) wait,
  in the order they were asked for, until upstream room frees; the local
  client's subscription is acked by its gateway as usual and its pushes start
  then. ``/health`` shows them under ``relay.waiting``.
- Upstream outages are the client's: it reconnects and re-subscribes; local
  connections stay open and quiet meanwhile. A refused upstream key or
  exhausted upstream credits end the relay (logged, ``relay.failed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from cmcstream.bus.base import Bus
from cmcstream.client import ConnectionState, StateChange, Stream
from cmcstream.clock import Clock, SystemClock
from cmcstream.exceptions import CapacityError, CMCStreamError, RequestError
from cmcstream.feed.publisher import Publisher
from cmcstream.protocol.billing import MILLI, BillingModel, CreditMeter, PerSubscription
from cmcstream.protocol.channels import CHANNELS, ChannelRegistry, Subscription
from cmcstream.protocol.codes import ErrorCode
from cmcstream.tasks import cancel_all

__all__ = ["Relay"]

logger = logging.getLogger(__name__)

RETRY_S = 1.0  # after a subscribe that failed on a connection problem
_LISTED = {spec.name: spec.list_param for spec in CHANNELS}


class Relay:
    """Merges local interest into upstream subscriptions and re-fans the pushes (a FeedRunner).

    Args:
        bus: the local bus.
        url: the upstream endpoint.
        api_key: the upstream key.
        meter: how the upstream charges, to report what it spent.
        linger_s: seconds an unwatched topic stays subscribed upstream.
        max_connections: upstream connections the key may hold.
        report_s: seconds between log lines comparing the credits.
        wall: the time stamped on re-fanned pushes.
        stream: the upstream client's options (tests shorten its timeouts).
    """

    def __init__(
        self,
        bus: Bus,
        url: str,
        api_key: str,
        *,
        meter: CreditMeter | None = None,
        linger_s: float = 5.0,
        max_connections: int = 10,
        report_s: float = 60.0,
        wall: Clock | None = None,
        **stream: Any,
    ) -> None:
        self.bus = bus
        self.url = url
        self.meter: CreditMeter = meter if meter is not None else PerSubscription()
        self.linger_s = linger_s
        self.report_s = report_s
        self.wall: Clock = wall if wall is not None else SystemClock()
        self.registry = ChannelRegistry()
        self.publisher = Publisher(bus)
        self.stream = Stream(
            api_key,
            url,
            raw=True,
            dedupe=False,  # one connection per topic: nothing to drop, and locals dedupe
            max_connections=max_connections,
            on_state=self._on_state,
            **stream,
        )
        self._want: dict[str, Subscription] = {}  # watched locally, in the order asked
        self._held: set[str] = set()  # subscribed upstream
        self._waiting: set[str] = set()  # no upstream room
        self._expired: set[str] = set()  # unwatched longer than the linger
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._charged: Callable[[], int] | None = None
        self.failed: str | None = None
        self.subscribed = 0  # upstream subscriptions made (each one charged)
        self.restored = 0  # made again by the client after a reconnect (charged again)
        self.unsubscribed = 0
        self.pushes = 0  # received from upstream

    # -- the FeedRunner ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect upstream (a refused key fails here), then follow interest."""
        await self.stream.open()
        self.bus.set_interest(self._watch, self._unwatch)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._pump(), name="relay-pump"),
            loop.create_task(self._reconcile(), name="relay-subscriptions"),
            loop.create_task(self._report_every(), name="relay-report"),
        ]

    async def stop(self) -> None:
        for handle in self._lingering.values():
            handle.cancel()
        await cancel_all(self._tasks)
        self._tasks = []
        await self.stream.close()
        self.report()

    def compare_with(self, charged: Callable[[], int]) -> None:
        self._charged = charged

    def health(self) -> dict[str, Any]:
        upstream, local = self.upstream_milli, self.local_milli
        return {
            "source": "relay",
            "relay": {
                "upstream": self.url,
                "state": self.stream.state.value,
                "failed": self.failed,
                "connections": self.stream.connections,
                "topics": len(self._held),
                "waiting": sorted(self._waiting),
                "pushes": self.pushes,
                "published": self.publisher.published,
                "subscribed": self.subscribed,
                "restored": self.restored,
                "unsubscribed": self.unsubscribed,
                "reconnects": self.stream.stats()["reconnects"],
                "credits": {
                    "model": self.meter.model.value,
                    "upstream": upstream / MILLI,
                    "local": None if local is None else local / MILLI,
                    "saved": None if local is None else saved(upstream, local),
                },
            },
        }

    # -- credits -----------------------------------------------------------------------------

    @property
    def upstream_milli(self) -> int:
        """What the upstream charged the relay's key, by its billing model."""
        if self.meter.model is BillingModel.PER_MESSAGE:
            return self.meter.rate * self.pushes
        return self.meter.for_subscriptions(self.subscribed + self.restored)

    @property
    def local_milli(self) -> int | None:
        return self._charged() if self._charged is not None else None

    def report(self) -> None:
        upstream, local = self.upstream_milli, self.local_milli
        if local is None:
            logger.info("relay: upstream charged %g credits", upstream / MILLI)
            return
        logger.info(
            "relay: upstream charged %g credits (%d subscriptions, %d pushes);"
            " local clients were charged %g; saved %.1f%%",
            upstream / MILLI,
            self.subscribed + self.restored,
            self.pushes,
            local / MILLI,
            100 * saved(upstream, local),
        )

    async def _report_every(self) -> None:
        while True:
            await asyncio.sleep(self.report_s)
            self.report()

    # -- interest ----------------------------------------------------------------------------

    def _watch(self, topic: str) -> None:
        sub = self.registry.subscription_of(topic)
        if sub is None:
            logger.warning("ignoring interest in %r, which is not a topic", topic)
            return
        handle = self._lingering.pop(topic, None)
        if handle is not None:
            handle.cancel()
        self._expired.discard(topic)
        self._want[topic] = sub
        self.publisher.watch(sub)
        if topic not in self._held:
            self._dirty.set()

    def _unwatch(self, topic: str) -> None:
        if self._want.pop(topic, None) is None:
            return
        self.publisher.unwatch(topic)
        self._waiting.discard(topic)
        if topic in self._held:
            loop = asyncio.get_running_loop()
            self._lingering[topic] = loop.call_later(self.linger_s, self._expire, topic)

    def _expire(self, topic: str) -> None:
        del self._lingering[topic]
        self._expired.add(topic)
        self._dirty.set()

    # -- upstream subscriptions --------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Bring the upstream subscriptions in line with local interest, one change at a time."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._apply()
            except Exception:  # the next change tries again
                logger.exception("upstream subscriptions not brought in line")

    async def _apply(self) -> None:
        drop = [t for t in self._expired if t in self._held and t not in self._want]
        self._expired.clear()
        for channel, params, topics in requests(self._want_of(drop)):
            await self._unsubscribe(channel, params, topics)
        add = [t for t in self._want if t not in self._held]
        for channel, params, topics in requests(self._want_of(add, wanted=True)):
            await self._subscribe(channel, params, topics)

    def _want_of(self, topics: Iterable[str], *, wanted: bool = False) -> list[Subscription]:
        subs = (self._want.get(t) if wanted else self.registry.subscription_of(t) for t in topics)
        return [sub for sub in subs if sub is not None]

    async def _subscribe(self, channel: str, params: dict[str, Any], topics: list[str]) -> None:
        try:
            await self.stream.subscribe(channel, params)
        except CapacityError:
            if len(topics) > 1:  # as many as fit, one by one
                for sub in self._want_of(topics, wanted=True):
                    await self._subscribe(sub.channel, dict(sub.params), [sub.topic])
                return
            self._wait(topics)
            return
        except RequestError as exc:
            if exc.error_code == ErrorCode.SUBSCRIPTION_LIMIT:
                self._wait(topics)
            else:
                logger.error("upstream refused %s %s: %s", channel, params, exc)
            return
        except (CMCStreamError, TimeoutError) as exc:
            logger.warning("upstream subscribe of %s failed (%s); retrying", channel, exc)
            asyncio.get_running_loop().call_later(RETRY_S, self._dirty.set)
            return
        loop = asyncio.get_running_loop()
        for topic in topics:
            self._waiting.discard(topic)
            self._held.add(topic)
            if topic not in self._want and topic not in self._lingering:
                # Unwatched while its subscribe was on the way: it lingers like any other.
                self._lingering[topic] = loop.call_later(self.linger_s, self._expire, topic)
        self.subscribed += len(topics)

    def _wait(self, topics: list[str]) -> None:
        fresh = [t for t in topics if t not in self._waiting]
        self._waiting.update(topics)
        if fresh:
            logger.warning(
                "no upstream room for %d topic(s) (%d held); they wait for room: %s",
                len(fresh),
                len(self._held),
                ", ".join(fresh[:5]),
            )

    async def _unsubscribe(self, channel: str, params: dict[str, Any], topics: list[str]) -> None:
        try:
            await self.stream.unsubscribe(channel, params)
        except (CMCStreamError, TimeoutError) as exc:
            logger.warning("upstream unsubscribe of %s failed (%s)", channel, exc)
        # Held or not, the upstream sends them no more once the connection is back.
        self._held.difference_update(topics)
        self.unsubscribed += len(topics)
        if self._waiting:
            self._dirty.set()

    def _on_state(self, change: StateChange) -> None:
        if change.state is ConnectionState.OPEN and change.outage is not None:
            # Restored after a reconnect, and charged again; what the upstream refused
            # to restore is not held any more.
            self.restored += len(self._topics(self.stream.subscriptions_of(change.link)))
            lost = self._held - self._topics(self.stream.subscriptions)
            if lost:
                self._held -= lost
                self._dirty.set()

    def _topics(self, entries: list[dict[str, Any]]) -> set[str]:
        topics = set()
        for entry in entries:
            params = dict(entry)
            sub = self.registry.subscription_of_push(params.pop("channel"), params)
            if sub is not None:
                topics.add(sub.topic)
        return topics

    # -- pushes ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            async for push in self.stream:
                self.pushes += 1
                sub = self.registry.subscription_of_push(push.channel, push.params)
                if sub is None:
                    continue
                if self.publisher.publish(sub.topic, push.data, self.wall.now_ms()):
                    self.publisher.flush()
        except CMCStreamError as exc:
            self.failed = str(exc)
            logger.error("the upstream stream failed: %s", exc)


def saved(upstream: int, local: int) -> float:
    """The share of the local charges the upstream did not charge (0 when nothing was charged)."""
    return 0.0 if local <= 0 else round(1 - upstream / local, 4)


def requests(subs: Iterable[Subscription]) -> list[tuple[str, dict[str, Any], list[str]]]:
    """Subscriptions merged into requests: one per channel and scalar params, the list
    param holding every item (the upstream client spreads them over connections)."""
    merged: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[dict[str, Any], list[str]]] = {}
    for sub in subs:
        listed = _LISTED.get(sub.channel)
        scalars = tuple((k, v) for k, v in sub.params.items() if k != listed)
        if listed is None:
            merged[(sub.topic, scalars)] = (dict(sub.params), [sub.topic])
            continue
        params, topics = merged.setdefault((sub.channel, scalars), ({**dict(scalars)}, []))
        params.setdefault(listed, []).append(sub.params[listed])
        topics.append(sub.topic)
    return [(key[0].partition("|")[0], params, topics) for key, (params, topics) in merged.items()]
