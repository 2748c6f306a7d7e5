"""The gateway: admission, connections, the hub, the writer and billing.

It serves clients the pushes the feed publishes on the bus and tells the bus
which topics its clients watch; it knows nothing of where pushes come from.
Each push arrives encoded once; the hub frames it once and queues the same
bytes on every subscriber's outbox, and the flush scheduler writes each
connection's queue in one write.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve

from cmcstream.bus.base import Bus
from cmcstream.clock import Clock, SystemClock
from cmcstream.config import ServerConfig
from cmcstream.protocol import codec
from cmcstream.protocol.billing import MILLI, BillingModel, make_meter
from cmcstream.protocol.channels import ChannelRegistry
from cmcstream.protocol.codes import CLOSE_CODES, CloseCode, ErrorCode
from cmcstream.protocol.messages import Welcome
from cmcstream.protocol.plans import PLANS
from cmcstream.protocol.session import Session, error_message
from cmcstream.server.auth import Admission, ConflictingKeys, Refusal, admit, api_key_of
from cmcstream.server.connection import Connection
from cmcstream.server.frames import text_frame
from cmcstream.server.http import make_process_request
from cmcstream.server.hub import Hub
from cmcstream.server.metrics import GatewayCollector, PushLatency, Snapshot, metrics_endpoint
from cmcstream.server.playground import Playground
from cmcstream.server.store import KeyStatus, Store, key_id
from cmcstream.server.transport import ActivityConnection, echo_subprotocol, tls_context
from cmcstream.server.usage import PushCharge, UsageLedger
from cmcstream.server.writer import FlushScheduler
from cmcstream.version import __version__

if TYPE_CHECKING:
    from cmcstream.server.leases import Lease, Leases

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)
# One line per connection opened, refused or closed (cmcstream.logs formats them).
connection_log = logging.getLogger("cmcstream.connections")
_ABNORMAL = 1006  # no close frame came or went (RFC 6455 §7.4.1)


class Gateway:
    """Clients' connections to the pushes on a bus.

    Args:
        config: the server configuration (the gateway reads its own part).
        store: the key store (the gateway does not close it).
        bus: where pushes come from and interest goes.
        wall: real time, for everything on the wire outside payloads (the
            envelope's ``welcome``, ``pong``, error timestamps) and for usage
            months; defaults to the system clock. Clients compare those with
            their own clock, whatever ``--speed`` the market runs at.
        health: extra ``/health`` fields (the feed's, when it runs in this process).
        feed_lag: how far the feed's loops run behind, in seconds (when it runs
            in this process), for ``/metrics``.
        leases: where a key's connections are counted across gateways; without
            it, each gateway counts its own (one gateway, one process).
        choices: what the playground offers to pick (see :class:`Playground`).
    """

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        bus: Bus,
        *,
        wall: Clock | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        feed_lag: Callable[[], Mapping[str, float]] | None = None,
        leases: Leases | None = None,
        choices: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.config = config
        self.playground = Playground(choices)
        self.leases = leases
        self.store = store
        self.keys = store.open_async()
        self.wall: Clock = wall if wall is not None else SystemClock()
        self.bus = bus
        self.hub = Hub(bus)
        self.registry = ChannelRegistry()
        self.meter = make_meter(config.billing, config.credit_rate)
        self.ledger = UsageLedger(self.keys)
        self._push_charges: dict[str, PushCharge] = {}
        self._extra_health = health
        self.connections: dict[str, set[Connection]] = {}
        self.slow_closed = 0
        # What /metrics reads: counts by code, and what connections gone did.
        self.errors: collections.Counter[str] = collections.Counter()
        self.closes: collections.Counter[int] = collections.Counter()
        self._gone = _Sent()
        self.latency = PushLatency(self.wall)
        self._feed_lag = feed_lag
        self._metrics: Callable[[], bytes] | None = None
        if config.metrics:
            self.hub.on_sample = self.latency.mark
            self._metrics = metrics_endpoint(GatewayCollector(self.snapshot, self.latency))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._started_at = time.monotonic()
        self._stopping = False
        self.scheduler: FlushScheduler  # set in start(), which has the loop

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening and start the background loops."""
        loop = asyncio.get_running_loop()
        if self.leases is not None:
            await self.leases.start()
        self.scheduler = FlushScheduler(loop)
        self.hub.on_fanout = self.scheduler.fanout
        self.hub.on_batch_end = self.scheduler.flush
        if self.config.metrics:
            self.scheduler.after_fanout = self.latency.settle
        config = self.config
        tls = None
        if config.tls_cert is not None and config.tls_key is not None:
            tls = tls_context(config.tls_cert, config.tls_key)
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            ssl=tls,
            create_connection=ActivityConnection,
            select_subprotocol=echo_subprotocol,
            process_request=make_process_request(
                self.health, metrics=self._metrics, playground=self.playground.route
            ),
            compression=None,  # pushes are pre-framed once and shared: no per-connection deflate
            open_timeout=config.open_timeout_s,
            max_size=config.transport_max_bytes,
            ping_interval=None,  # keep-alive is the protocol's JSON ping (§3)
            ping_timeout=None,
            close_timeout=config.close_timeout_s,
            server_header=f"cmcstream/{__version__}",
            backlog=config.backlog,
            reuse_port=config.reuse_port,
        )
        self._loops = [
            loop.create_task(self._sweep_loop(), name="sweep"),
            loop.create_task(self._usage_loop(), name="usage"),
        ]

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "ws" if self.config.tls_cert is None else "wss"
        return f"{scheme}://{self.config.host}:{self.port}/v1"

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
        for key in list(self.connections):
            self.ledger.forget(key)
        try:
            saved = await asyncio.wait_for(self.ledger.flush(), self.config.shutdown_timeout_s)
        except TimeoutError:
            saved = False
        if not saved:
            milli, messages = self.ledger.unsaved
            logger.error(
                "usage not saved at shutdown: %d milli-credits and %d messages", milli, messages
            )
        if self.leases is not None:
            await self.leases.aclose()
        await self.keys.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def health(self) -> dict[str, Any]:
        status = {
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
            "credits_charged": self.ledger.charged / MILLI,
        }
        if self._extra_health is not None:
            status.update(self._extra_health())
        return status

    def snapshot(self) -> Snapshot:
        """The counts ``/metrics`` shows, read now."""
        # Every plan and channel, at zero too: a series that vanishes is no reading.
        plans = collections.Counter(dict.fromkeys(PLANS, 0))
        sent = _Sent(self._gone.pushes, self._gone.bytes, self._gone.collapsed)
        slow = 0
        for group in self.connections.values():
            for conn in group:
                plans[conn.record.plan] += 1
                sent.add(conn)
                slow += conn.outbox.slow_since is not None
        return Snapshot(
            connections_by_plan=plans,
            subscriptions_by_channel=self.hub.subscriptions_by_channel(),
            pushes_fanned_out=self.hub.pushes,
            pushes_sent=sent.pushes,
            bytes_sent=sent.bytes,
            pushes_collapsed=sent.collapsed,
            slow_readers=slow,
            slow_closed=self.slow_closed,
            errors_by_code=self.errors,
            closes_by_code=self.closes,
            credits_charged_milli=self.ledger.charged_milli,
            feed_lag_s=self._feed_lag() if self._feed_lag is not None else {},
        )

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, ActivityConnection)
        verdict = await self._admit(ws)
        lease: Lease | None = None
        if self.leases is not None and not isinstance(verdict, Refusal):
            # Last, after every other check: a lease taken is a slot held cluster-wide.
            lease = await self.leases.acquire(verdict.record.key, verdict.plan.connection_limit)
            if lease is None:
                verdict = Refusal(CloseCode.CONNECTION_LIMIT)
        try:
            await self._serve_admitted(ws, verdict)
        finally:
            if lease is not None:
                lease.release()

    async def _serve_admitted(self, ws: ActivityConnection, verdict: Admission | Refusal) -> None:
        now_ms = self.wall.now_ms()
        if isinstance(verdict, Refusal):
            if verdict.error is not None:
                self.errors[str(int(verdict.error))] += 1
                ws.transport.write(text_frame(codec.encode(error_message(verdict.error, now_ms))))
            self.closes[verdict.close_code] += 1
            key = _key_of(ws)
            connection_log.info(
                "refused key_id=%s remote=%s code=%d",
                key_id(key) if key else "-",
                _remote(ws),
                verdict.close_code,
                extra={
                    "fields": {
                        "event": "refused",
                        "key_id": key_id(key) if key else None,
                        "remote": _remote(ws),
                        "code": int(verdict.close_code),
                    }
                },
            )
            await ws.close(verdict.close_code, CLOSE_CODES[verdict.close_code].reason)
            return
        key = verdict.record.key
        account = verdict.account
        assert account is not None  # every admitted key's account was read
        charge = None
        if self.meter.model is BillingModel.PER_MESSAGE:
            charge = self._push_charges.get(key)
            if charge is None:
                charge = self._push_charges[key] = PushCharge(
                    account, self.meter.rate, self._on_exhausted(key)
                )
            # Admitted, so the account can pay again (refunds of unsent pushes).
            charge.exhausted = False
        session = Session(
            self.registry,
            sub_limit=verdict.plan.subscription_limit,
            max_frame_bytes=self.config.max_frame_bytes,
            counting=self.config.counting,
            channels=verdict.plan.channels,
            account=account,
            meter=self.meter,
        )
        conn = Connection(self, ws, verdict.record, session, charge)
        self.connections.setdefault(key, set()).add(conn)
        fields = {"key_id": key_id(key), "plan": verdict.record.plan, "remote": _remote(ws)}
        connection_log.info(
            "open key_id=%s plan=%s remote=%s",
            *fields.values(),
            extra={"fields": {"event": "open", **fields}},
        )
        opened = time.monotonic()
        try:
            conn.send(Welcome(ping_interval_ms=self.config.ping_interval_ms, ts=now_ms))
            await conn.run()
        finally:
            self._forget(conn)
            code = int(conn.close_code or ws.close_code or _ABNORMAL)
            self.closes[code] += 1
            duration = round(time.monotonic() - opened, 3)
            connection_log.info(
                "close key_id=%s plan=%s remote=%s duration_s=%.3f code=%d",
                *fields.values(),
                duration,
                code,
                extra={
                    "fields": {"event": "close", **fields, "duration_s": duration, "code": code}
                },
            )

    async def _admit(self, ws: ActivityConnection) -> Admission | Refusal:
        """Check the handshake's key; store reads are awaited off the event loop."""
        try:
            key = api_key_of(ws.request) if ws.request is not None else None
        except ConflictingKeys as exc:
            logger.info("refusing a handshake: %s", exc)
            return Refusal(CloseCode.KEY_INVALID)
        record = account = None
        if key is not None:
            record = await self.keys.get(key)
            if record is not None:
                account = await self.ledger.account(record, self.wall.now_ms())
        # Counted after the reads: other handshakes of the key went on meanwhile.
        open_now = len(self.connections.get(key, ())) if key else 0
        return admit(key, record, account, self.meter.rate, open_now)

    def _forget(self, conn: Connection) -> None:
        self._gone.add(conn)
        self.hub.remove(conn.outbox, list(conn.session.subscriptions))
        conn.outbox.discard()
        self.scheduler.forget(conn.outbox)
        account = conn.session.account
        delivered = self._unbilled(conn)
        if delivered and account is not None:
            account.delivered(delivered)
        group = self.connections.get(conn.key)
        if group is not None:
            group.discard(conn)
            if not group:
                del self.connections[conn.key]
                self._push_charges.pop(conn.key, None)
                self.ledger.forget(conn.key)

    def _unbilled(self, conn: Connection) -> int:
        """Pushes delivered to ``conn`` since it was last counted, marked counted now."""
        delta = conn.outbox.data_sent - conn.billed_messages
        conn.billed_messages = conn.outbox.data_sent
        return delta

    def _on_exhausted(self, key: str) -> Callable[[], None]:
        # Told from inside a fan-out loop: the closes must wait for it to end.
        def later() -> None:
            asyncio.get_running_loop().call_soon(self._exhausted, key)

        return later

    def _exhausted(self, key: str) -> None:
        # §12.1 / Q12: error 1010 with no id, pushes stop, close 1000.
        for conn in list(self.connections.get(key, ())):
            conn.close(CloseCode.NORMAL, ErrorCode.CREDITS_EXHAUSTED)

    def _collect_usage(self) -> None:
        """Count the pushes every connection delivered since the last call."""
        for group in self.connections.values():
            for conn in group:
                delivered = self._unbilled(conn)
                account = conn.session.account
                if delivered and account is not None:
                    account.delivered(delivered)

    # -- background loops --------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        """Idle timeouts, usage counts, key re-checks: everything periodic about connections."""
        loop = asyncio.get_running_loop()
        period = min(0.5, self.config.idle_timeout_s / 4, self.config.usage_flush_s)
        last_recheck = loop.time()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            try:
                self._sweep_idle(now)
                self._collect_usage()
                if now - last_recheck >= self.config.key_recheck_s:
                    last_recheck = now
                    await self._recheck_keys()
            except Exception:
                logger.exception("sweep failed")

    async def _usage_loop(self) -> None:
        """Write usage to the store every ``usage_flush_s``; a failed write is retried."""
        while True:
            await asyncio.sleep(self.config.usage_flush_s)
            try:
                self._collect_usage()
                self.ledger.roll(self.wall.now_ms())
                await self.ledger.flush()
            except Exception:
                logger.exception("usage flush failed")

    def _sweep_idle(self, now: float) -> None:
        limit = self.config.idle_timeout_s
        for group in list(self.connections.values()):
            for conn in list(group):
                if now - max(conn.ws.last_received, conn.outbox.last_push) > limit:
                    conn.close(CloseCode.IDLE_TIMEOUT)

    async def _recheck_keys(self) -> None:
        """Close connections whose key was deleted, disabled or downgraded since they opened."""
        if not self.connections:
            return
        records = await self.keys.find(list(self.connections))
        for key, group in list(self.connections.items()):
            record = records.get(key)
            code, error = CloseCode.KEY_INVALID, None
            if record is not None:
                plan = PLANS.get(record.plan)
                if record.status is KeyStatus.ACTIVE and plan is not None and plan.websocket:
                    for conn in group:
                        conn.record = record
                        if conn.session.account is not None:
                            conn.session.account.limit = record.monthly_milli
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


class _Sent:
    """Pushes and bytes written, and pushes collapsed, summed over connections."""

    __slots__ = ("bytes", "collapsed", "pushes")

    def __init__(self, pushes: int = 0, bytes: int = 0, collapsed: int = 0) -> None:
        self.pushes = pushes
        self.bytes = bytes
        self.collapsed = collapsed

    def add(self, conn: Connection) -> None:
        outbox = conn.outbox
        self.pushes += outbox.data_sent
        self.bytes += outbox.bytes_sent
        self.collapsed += outbox.data_dropped


def _remote(ws: ActivityConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _key_of(ws: ActivityConnection) -> str | None:
    """The handshake's key, or None when there is none or it is ambiguous."""
    try:
        return api_key_of(ws.request) if ws.request is not None else None
    except ConflictingKeys:
        return None
