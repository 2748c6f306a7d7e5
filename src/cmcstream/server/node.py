"""The node: wires the market source and engine, the bus, the hub and the connections.

Data flows one way (DESIGN.md): the simulator produces raw events, the engine
turns them into payloads on its cadence, each payload is encoded once per
topic and published on the bus, the hub frames it once and queues the same
bytes on every subscriber's outbox, and the flush scheduler writes each
connection's queue in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from itertools import islice
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from cmcstream import heap
from cmcstream.bus.base import Bus
from cmcstream.bus.memory import MemoryBus
from cmcstream.clock import Clock, SimClock
from cmcstream.config import ServerConfig
from cmcstream.engine import build as engine_build
from cmcstream.engine.market import MarketEngine
from cmcstream.engine.onchain import OnchainEngine
from cmcstream.engine.tokens import REFERENCE_TOKENS
from cmcstream.protocol import codec
from cmcstream.protocol.billing import make_meter
from cmcstream.protocol.channels import ChannelRegistry, Subscription
from cmcstream.protocol.codes import CLOSE_CODES, CloseCode, ErrorCode
from cmcstream.protocol.messages import Welcome
from cmcstream.protocol.plans import PLANS
from cmcstream.protocol.session import Session, error_message
from cmcstream.server.auth import Admission, admit, api_key_of
from cmcstream.server.connection import Connection
from cmcstream.server.frames import text_frame
from cmcstream.server.http import make_process_request
from cmcstream.server.hub import Hub
from cmcstream.server.keystore import KeyStatus, KeyStore
from cmcstream.server.usage import UsageLedger
from cmcstream.server.writer import FlushScheduler
from cmcstream.sources.simulator.dex import DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.sources.simulator.market import MarketSimulator
from cmcstream.sources.simulator.reference_prices import ReferencePrices
from cmcstream.sources.simulator.universe import Universe
from cmcstream.version import __version__

__all__ = ["MARKET_CHANNEL", "Node"]

logger = logging.getLogger(__name__)

MARKET_CHANNEL = "market@crypto_latest_price"
_STEP_FLUSH_S = 0.005  # longest a push waits inside a busy on-chain step
_STEP_CHUNK = 64  # events folded per engine call between checks of that wait


class Node:
    """One cmcstream server process.

    Args:
        config: the server configuration.
        store: the key store (the node does not close it).
        clock: simulated time; defaults to a :class:`SimClock` at ``config.speed``.
        bus: defaults to a :class:`MemoryBus`.
    """

    def __init__(
        self,
        config: ServerConfig,
        store: KeyStore,
        *,
        clock: Clock | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock: Clock = clock if clock is not None else SimClock(config.speed, config.start_ms)
        self.bus: Bus = bus if bus is not None else MemoryBus()
        self.hub = Hub(self.bus, on_watch=self._watch, on_unwatch=self._unwatch)
        self.registry = ChannelRegistry()
        self.meter = make_meter(config.billing, config.credit_rate)
        self.ledger = UsageLedger(store)
        self.engine = MarketEngine(
            fast_cadence_ms=config.fast_cadence_ms,
            slow_cadence_ms=config.slow_cadence_ms,
            fast_rank_max=config.fast_rank_max,
        )
        self.simulator = MarketSimulator(
            Universe.load(config.universe_size, seed=config.seed),
            seed=config.seed,
            step_ms=config.fast_cadence_ms,
        )
        self._quotes: dict[int, float] = {}
        self.onchain = OnchainEngine(self._quote_price, metric_period_ms=config.metric_period_ms)
        self.world = DexWorld.build(config.seed)
        self.dex = DexSimulator(self.world, seed=config.seed, activity=config.dex_activity)
        self.connections: dict[str, set[Connection]] = {}
        self.slow_closed = 0
        self.pushes_published = 0
        self._prefixes: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._started_at = time.monotonic()
        self._stopping = False
        self.origin_ms = 0  # where the backfilled history ends; set in start()
        self.scheduler: FlushScheduler  # set in start(), which has the loop

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the market, start listening and start the background loops."""
        loop = asyncio.get_running_loop()
        self.scheduler = FlushScheduler(loop)
        self.hub.on_fanout = self.scheduler.fanout
        # History ends on a cadence boundary, so a fixed --start and --seed give
        # the same market whatever the machine took to get here.
        now_ms = self.clock.now_ms()
        self.origin_ms = now_ms - now_ms % self.config.fast_cadence_ms
        past = ReferencePrices(token.cmc_id for token in REFERENCE_TOKENS)
        for event in self.simulator.backfill(self.origin_ms):
            past.observe(event)
            self.engine.apply(event)
        if self.config.dex_warm_up:
            # A week of DEX history, priced as the market was then: every window is full.
            for quotes, dex_events in self.dex.warm_up(self.origin_ms, past.at):
                self._quotes = dict(quotes)
                self.onchain.apply_many(dex_events)
        else:
            self.onchain.apply_many(
                self.dex.genesis(self.origin_ms, self._reference_prices(self.origin_ms))
            )
        if self.config.tune_gc:
            heap.settle()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=make_process_request(self.health),
            compression=None,  # pushes are pre-framed once and shared: no per-connection deflate
            max_size=self.config.transport_max_bytes,
            ping_interval=None,  # keep-alive is the protocol's JSON ping (§3)
            ping_timeout=None,
            close_timeout=self.config.close_timeout_s,
            server_header=f"cmcstream/{__version__}",
            backlog=self.config.backlog,
        )
        cadence, step = self.config.fast_cadence_ms, self.config.onchain_step_ms
        self._loops = [
            loop.create_task(
                self._every(cadence, cadence, self._market_tick, "market tick"), name="market"
            ),
            # The DEX world steps every simulated second (its interval closes need it).
            loop.create_task(
                self._every(step, 10 * step, self.publish_onchain, "on-chain step"),
                name="onchain",
            ),
            loop.create_task(self._sweep_loop(), name="sweep"),
        ]

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}/v1"

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, close every connection with 1001, save usage.

        Bounded by ``shutdown_timeout_s``: connections that have not finished
        their closing handshake by then are dropped.
        """
        if self._stopping:
            return
        self._stopping = True
        for task in self._loops:
            task.cancel()
        if self._server is not None:
            self._server.close(close_connections=False)
        conns = [c for group in self.connections.values() for c in group]
        for conn in conns:
            conn.close(CloseCode.IDLE_TIMEOUT)
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=self.config.shutdown_timeout_s)
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), self.config.close_timeout_s)
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._collect_usage()
        self.ledger.flush()
        await self.bus.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def health(self) -> dict[str, Any]:
        return {
            "status": "stopping" if self._stopping else "ok",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "connections": sum(len(group) for group in self.connections.values()),
            "topics": self.hub.topic_count,
            "pushes": self.hub.pushes,
            # Readers behind right now, and those closed with 1011 for it so far.
            "slow_readers": sum(
                conn.outbox.slow_since is not None
                for group in self.connections.values()
                for conn in group
            ),
            "slow_closed": self.slow_closed,
            "engine": engine_build(),
        }

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        now_ms = self.clock.now_ms()
        key = api_key_of(ws.request) if ws.request is not None else None
        open_now = len(self.connections.get(key, ())) if key else 0
        verdict = admit(key, self.store, self.ledger, open_now, now_ms)
        if not isinstance(verdict, Admission):
            if verdict.error is not None:
                ws.transport.write(text_frame(codec.encode(error_message(verdict.error, now_ms))))
            await ws.close(verdict.close_code, CLOSE_CODES[verdict.close_code].reason)
            return
        session = Session(
            self.registry,
            sub_limit=verdict.plan.subscription_limit,
            max_frame_bytes=self.config.max_frame_bytes,
            counting=self.config.counting,
            channels=verdict.plan.channels,
        )
        conn = Connection(self, ws, verdict.record, session)
        self.connections.setdefault(conn.key, set()).add(conn)
        try:
            conn.send(Welcome(ping_interval_ms=self.config.ping_interval_ms, ts=now_ms))
            await conn.run()
        finally:
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        self.hub.remove(conn.outbox, list(conn.session.subscriptions))
        self.scheduler.forget(conn.outbox)
        delivered = self._unbilled(conn)
        if delivered:
            self._charge_messages(conn.key, delivered, self.clock.now_ms())
        group = self.connections.get(conn.key)
        if group is not None:
            group.discard(conn)
            if not group:
                del self.connections[conn.key]
                self.ledger.forget(conn.key)

    def charge_subscriptions(self, conn: Connection, count: int, now_ms: int) -> None:
        credits = self.meter.for_subscriptions(count)
        if credits:
            spent = self.ledger.charge(conn.key, now_ms, credits=credits)
            if spent >= conn.record.monthly_credits:
                self._exhausted(conn.key)

    def _unbilled(self, conn: Connection) -> int:
        """Pushes delivered to ``conn`` since it was last billed, marked billed now."""
        delta = conn.outbox.data_sent - conn.billed_messages
        conn.billed_messages = conn.outbox.data_sent
        return delta

    def _charge_messages(self, key: str, count: int, now_ms: int) -> float:
        return self.ledger.charge(
            key, now_ms, credits=self.meter.for_messages(count), messages=count
        )

    def _exhausted(self, key: str) -> None:
        # §12.1 / Q12: error 1010 with no id, pushes stop, close 1000.
        for conn in list(self.connections.get(key, ())):
            conn.close(CloseCode.NORMAL, ErrorCode.CREDITS_EXHAUSTED)

    def _collect_usage(self) -> None:
        """Bill every key for the pushes its connections delivered since the last call."""
        now_ms = self.clock.now_ms()
        for key, group in list(self.connections.items()):
            delivered = sum(self._unbilled(conn) for conn in group)
            if delivered:
                spent = self._charge_messages(key, delivered, now_ms)
                if spent >= next(iter(group)).record.monthly_credits:
                    self._exhausted(key)

    # -- background loops --------------------------------------------------------------------

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
            if now_ms - due > lag_limit_ms:
                due = now_ms - now_ms % period_ms
            try:
                action(due)
            except Exception:
                logger.exception("%s at %d failed", name, due)
            due += period_ms

    def _market_tick(self, tick_ms: int) -> None:
        """Advance the market to ``tick_ms`` and publish the pushes due then."""
        for event in self.simulator.step(tick_ms):
            self.engine.apply(event)
        self.publish_market(tick_ms)

    def publish_market(self, tick_ms: int) -> int:
        """Publish the pushes due at ``tick_ms`` for every watched id; returns how many."""
        watched = self.hub.watched(MARKET_CHANNEL)
        if not watched:
            return 0
        topic_of: dict[int, str] = {}
        for topic, sub in watched.items():
            cid = sub.params["crypto_ids"]
            assert isinstance(cid, int)
            topic_of[cid] = topic
        payloads = self.engine.tick(tick_ms, topic_of.keys())
        now_ms = self.clock.now_ms()
        for payload in payloads:
            self._publish_watched(topic_of[payload.cid], payload, now_ms)
        self.pushes_published += len(payloads)
        # Written now rather than on the next loop pass, which may be behind
        # an on-chain step that became due at the same instant.
        self.scheduler.flush()
        return len(payloads)

    # -- on-chain ----------------------------------------------------------------------------

    def _quote_price(self, cmc_id: int) -> float | None:
        """The market channel's price of ``cmc_id``: what quote tokens are worth in USD."""
        return self._quotes.get(cmc_id)

    def _reference_prices(self, now_ms: int) -> dict[int, float]:
        """Market prices of every reference token's coin, read once per on-chain step."""
        prices = {}
        for token in REFERENCE_TOKENS:
            payload = self.engine.latest_price(token.cmc_id, now_ms)
            if payload is not None:
                prices[token.cmc_id] = payload.p
        self._quotes = prices
        return prices

    def _watch(self, sub: Subscription) -> None:
        if sub.channel != MARKET_CHANNEL:
            self.onchain.watch(sub, self.clock.now_ms())

    def _unwatch(self, sub: Subscription) -> None:
        self._prefixes.pop(sub.topic, None)
        if sub.channel != MARKET_CHANNEL:
            self.onchain.unwatch(sub)

    def publish_onchain(self, step_ms: int) -> int:
        """Advance the DEX world to ``step_ms`` and publish the pushes; returns how many."""
        engine = self.onchain
        clock, loop_time = self.clock, asyncio.get_running_loop().time
        now_ms = clock.now_ms()
        flushed = loop_time()
        published = 0
        events = self.dex.step(step_ms, self._reference_prices(step_ms))
        while chunk := list(islice(events, _STEP_CHUNK)):
            for topic, payload in engine.apply_many(chunk):
                published += self._publish_watched(topic, payload, now_ms)
            # A busy step takes a while: what is ready leaves every few ms
            # instead of after the whole step, stamped with its send time.
            if loop_time() - flushed > _STEP_FLUSH_S:
                self.scheduler.flush()
                flushed, now_ms = loop_time(), clock.now_ms()
        for topic, payload in engine.advance(step_ms):
            published += self._publish_watched(topic, payload, now_ms)
        self.scheduler.flush()
        return published

    def _publish_watched(self, topic: str, payload: Any, now_ms: int) -> int:
        prefix = self._prefixes.get(topic)
        if prefix is None:
            sub = self.hub.subscription(topic)
            if sub is None:
                return 0
            prefix = self._prefixes[topic] = codec.data_prefix(sub.channel, dict(sub.params))
        self.bus.publish(topic, codec.encode_data(prefix, payload, now_ms))
        return 1

    async def _sweep_loop(self) -> None:
        """Idle timeouts, usage, key re-checks: everything periodic about connections."""
        loop = asyncio.get_running_loop()
        period = min(0.5, self.config.idle_timeout_s / 4, self.config.usage_flush_s)
        last_flush = last_recheck = loop.time()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            try:
                self._sweep_idle(now)
                self._collect_usage()
                if now - last_flush >= self.config.usage_flush_s:
                    self.ledger.flush()
                    last_flush = now
                if now - last_recheck >= self.config.key_recheck_s:
                    self._recheck_keys()
                    last_recheck = now
            except Exception:
                logger.exception("sweep failed")

    def _sweep_idle(self, now: float) -> None:
        limit = self.config.idle_timeout_s
        for group in list(self.connections.values()):
            for conn in list(group):
                if now - max(conn.last_client, conn.outbox.last_push) > limit:
                    conn.close(CloseCode.IDLE_TIMEOUT)

    def _recheck_keys(self) -> None:
        """Close connections whose key was deleted, disabled or downgraded since they opened."""
        if not self.connections:
            return
        records = self.store.find(self.connections)
        for key, group in list(self.connections.items()):
            record = records.get(key)
            code, error = CloseCode.KEY_INVALID, None
            if record is not None:
                plan = PLANS.get(record.plan)
                if record.status is KeyStatus.ACTIVE and plan is not None and plan.websocket:
                    for conn in group:
                        conn.record = record
                    continue
                if record.status is KeyStatus.DISABLED:
                    code = CloseCode.KEY_DISABLED
                elif record.status is KeyStatus.INACTIVE:
                    error = ErrorCode.KEY_NOT_ACTIVATED
                elif record.status is KeyStatus.EXPIRED:
                    error = ErrorCode.PLAN_EXPIRED
                else:
                    code = CloseCode.PLAN_NOT_SUPPORTED
            for conn in list(group):
                conn.close(code, error)
