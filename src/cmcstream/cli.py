"""The ``cmcstream`` command: ``serve``, ``feed``, ``gateway``, ``keys``, ``world``, ``market``,
``tail``, ``record``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import msgspec

from cmcstream.config import DEFAULT_LEASE_TTL_S, ServerConfig, WriterPolicy
from cmcstream.engine import build as engine_build
from cmcstream.protocol.billing import BillingModel, format_credits, make_meter
from cmcstream.protocol.plans import DEFAULT_PLAN, PLANS
from cmcstream.protocol.session import Counting
from cmcstream.server.store import (
    KeyRecord,
    KeyStatus,
    Store,
    StoreUnavailable,
    month_of,
)
from cmcstream.server.stores import open_store
from cmcstream.version import __version__

if TYPE_CHECKING:
    from cmcstream.admin_client import AdminClient
    from cmcstream.app import App
    from cmcstream.bus.base import Bus
    from cmcstream.console.subscriptions import Sub
    from cmcstream.server.leases import RedisLeases
    from cmcstream.workers import Supervisor

__all__ = ["main"]

_db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="CMCSTREAM_DB",
    help="Key store: a SQLite file, or a postgresql://USER@HOST:PORT/DBNAME URL"
    " (?schema=NAME, default cmcstream). Default: keys.db in the user's data directory."
    " Env: CMCSTREAM_DB.",
)


def _safe_location(location: str) -> str:
    """A store location fit to print: a URL's password left out."""
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    if parts.password is None:
        return location
    return location.replace(f":{parts.password}@", ":***@", 1)


def _open_store(db: str | None) -> Store:
    try:
        return open_store(db if db is not None else ServerConfig().store_location)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmcstream")
def main() -> None:
    """A self-hostable CoinMarketCap WebSocket API server, and its tools."""


# -- serve, feed and gateway ---------------------------------------------------------------------

DEFAULT_BUS = "redis://127.0.0.1:6379/0"
DEFAULT_UPSTREAM = "wss://pro-stream.coinmarketcap.com/v1"

_Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def _options(*options: _Decorator) -> _Decorator:
    def apply(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


# What the feed is told: the simulated world, so the same on every gateway.
_feed_options = _options(
    click.option(
        "--seed", default=0, show_default=True, help="Simulator seed (same seed, same data)."
    ),
    click.option(
        "--speed", default=1.0, show_default=True, help="Simulated seconds per wall-clock second."
    ),
    click.option(
        "--start",
        default=None,
        metavar="TIME",
        help="Simulated start time: ISO 8601 (2026-05-13T00:00:00Z) or epoch ms. Default: now.",
    ),
    click.option(
        "--universe-size", default=5000, show_default=True, help="Assets in the simulated market."
    ),
    click.option(
        "--dex-activity",
        default=1.0,
        show_default=True,
        help="Multiplies the simulated DEX world's trading rates.",
    ),
)

# What a gateway is told: the socket, the keys and the rules of a connection.
_gateway_options = _options(
    click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on."),
    click.option("--port", default=8765, show_default=True, help="TCP port (0 picks a free one)."),
    _db_option,
    click.option("--ping-interval-ms", default=10_000, show_default=True, help="Sent in welcome."),
    click.option(
        "--idle-timeout",
        default=60.0,
        show_default=True,
        help="Seconds before an idle close (1001).",
    ),
    click.option(
        "--max-frame-bytes", default=65536, show_default=True, help="Longer requests get 2203."
    ),
    click.option(
        "--counting",
        type=click.Choice([c.value for c in Counting]),
        default=Counting.PER_ITEM.value,
        show_default=True,
        help="What sub_count counts.",
    ),
    click.option(
        "--billing",
        type=click.Choice([b.value for b in BillingModel]),
        default=BillingModel.PER_SUBSCRIPTION.value,
        show_default=True,
        help="Credit model.",
    ),
    click.option(
        "--slow-timeout",
        default=30.0,
        show_default=True,
        help="Seconds a reader may stay behind before it is closed with 1011.",
    ),
    click.option(
        "--metrics/--no-metrics",
        default=True,
        show_default=True,
        help="Serve GET /metrics (Prometheus) on the WebSocket port.",
    ),
    click.option(
        "--tls-cert",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="PEM certificate (with chain) to serve wss:// (needs --tls-key).",
    ),
    click.option(
        "--tls-key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="The certificate's private key (PEM).",
    ),
)

_process_options = _options(
    click.option(
        "--loop",
        "loop_name",
        type=click.Choice(["auto", "asyncio", "uvloop"]),
        default="auto",
        show_default=True,
        help="Event loop; auto takes uvloop where it is installed.",
    ),
    click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="warning",
        show_default=True,
    ),
    click.option("--log-json", is_flag=True, help="Log one JSON object a line."),
    click.option(
        "--connection-log/--no-connection-log",
        default=True,
        show_default=True,
        help="Log a line per connection opened, refused and closed (key id, never the key),"
        " whatever --log-level.",
    ),
)

# The admin HTTP API of `serve`.
_admin_options = _options(
    click.option(
        "--admin-port",
        type=click.IntRange(min=0, max=65535),
        default=None,
        help="Serve the admin HTTP API (keys, usage; OpenAPI at /openapi.json) on this port.",
    ),
    click.option(
        "--admin-host",
        default="127.0.0.1",
        show_default=True,
        help="Interface of the admin API.",
    ),
    click.option(
        "--admin-token",
        default=None,
        envvar="CMCSTREAM_ADMIN_TOKEN",
        help="Bearer token the admin API requires. Env: CMCSTREAM_ADMIN_TOKEN.",
    ),
)


_source_options = _options(
    click.option(
        "--source",
        "sources",
        multiple=True,
        metavar="sim|exchanges|evm|replay:FILE|relay",
        help="Where pushes come from, repeatable: exchanges (the market side, --exchange),"
        " evm (the on-chain side, --rpc), sim (the default) simulates a side not named;"
        " or alone, for every channel: replay:FILE (a `cmcstream record` file, paced by"
        " --speed) or relay (--upstream, one upstream subscription per topic local clients"
        " watch).",
    ),
    click.option(
        "--exchange",
        "exchanges",
        multiple=True,
        metavar="ID",
        help="A ccxt exchange id (binance, kraken, …) for --source exchanges; repeatable.",
    ),
    click.option(
        "--symbols",
        default="BTC,ETH",
        show_default=True,
        help="Base tickers the exchanges are followed for, comma-separated.",
    ),
    click.option(
        "--quote",
        "quotes",
        multiple=True,
        metavar="CODE",
        help="Quote currencies used (valued at their USD peg); default USD, USDT, USDC.",
    ),
    click.option(
        "--asset",
        "asset_ids",
        multiple=True,
        metavar="SYMBOL=ID",
        help="Map a ticker to a CoinMarketCap id beyond the bundled table; repeatable.",
    ),
    click.option(
        "--exchange-url",
        "exchange_urls",
        multiple=True,
        metavar="ID:PATH=URL",
        help="Override one of a ccxt client's API URLs, e.g. kraken:ws.publicV2=ws://…",
    ),
    click.option(
        "--exchange-option",
        "exchange_options",
        multiple=True,
        metavar="ID:KEY=JSON",
        help='Set one of a ccxt client\'s options, e.g. binance:fetchMarkets={"types":["spot"]}.',
    ),
    click.option(
        "--rpc",
        multiple=True,
        help="A chain's WebSocket JSON-RPC URL (ws://…), repeatable: PLATFORM_ID=URL "
        "(e.g. --rpc 1=ws://a --rpc 14=ws://b), or a bare URL for --platform-id.",
    ),
    click.option(
        "--platform-id", default=1, show_default=True, help="The platform id of a bare --rpc URL."
    ),
    click.option(
        "--from-block",
        type=int,
        default=None,
        help="Back-fill from this block on every chain (default: each one's head).",
    ),
    click.option("--confirmations", default=0, show_default=True, help="Blocks on top."),
    click.option("--repeat", is_flag=True, help="replay: start over at the end of the file."),
    click.option(
        "--upstream",
        default=DEFAULT_UPSTREAM,
        show_default=True,
        help="relay: the upstream endpoint.",
    ),
    click.option(
        "--upstream-key",
        default=None,
        envvar="CMC_PRO_API_KEY",
        help="relay: the upstream API key. Env: CMC_PRO_API_KEY.",
    ),
    click.option(
        "--linger",
        type=click.FloatRange(min=0),
        default=5.0,
        show_default=True,
        help="relay: seconds a topic nobody watches stays subscribed upstream.",
    ),
    click.option(
        "--upstream-connections",
        type=click.IntRange(min=1),
        default=10,
        show_default=True,
        help="relay: connections the upstream key may hold; each holds the sub_limit its "
        "acks announce.",
    ),
)


def _bus_option(default: str | None, help: str) -> _Decorator:
    return click.option(
        "--bus",
        default=default,
        show_default=default is not None,
        metavar="redis://HOST:PORT/DB",
        envvar="CMCSTREAM_BUS",
        help=f"{help} Env: CMCSTREAM_BUS.",
    )


_bus_prefix_option = click.option(
    "--bus-prefix",
    default="cmcstream",
    show_default=True,
    envvar="CMCSTREAM_BUS_PREFIX",
    help="Namespace of this deployment's keys in Redis (one per deployment sharing a Redis).",
)


def _lease_ttl_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--lease-ttl",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_LEASE_TTL_S,
        show_default=True,
        help="Seconds a dead gateway's connections still count against their keys' limits.",
    )(command)


@dataclass(frozen=True, slots=True)
class _Cluster:
    """The Redis that joins a feed and its gateways, with this deployment's prefix."""

    url: str
    prefix: str
    lease_ttl_s: float

    def require(self, why: str) -> None:
        """Fail with a message saying what to do when Redis does not answer."""
        try:
            import redis
        except ImportError:
            raise click.ClickException(
                f"{why}, which needs the Redis client: pip install 'cmcstream[redis]'"
            ) from None
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise click.ClickException(
                f"{why}, and Redis at {self.url} does not answer ({exc}). "
                "Start redis-server, or pass --bus redis://HOST:PORT/DB."
            ) from None
        finally:
            client.close()

    def bus(self, gateway_id: str | None = None) -> Bus:
        from cmcstream.bus.redis import RedisBus

        return RedisBus(self.url, prefix=self.prefix, gateway_id=gateway_id)

    def leases(self) -> RedisLeases:
        from cmcstream.server.leases import RedisLeases

        return RedisLeases(self.url, prefix=self.prefix, ttl_s=self.lease_ttl_s)


def _config(options: dict[str, Any]) -> ServerConfig:
    """The configuration a command's options give; options it lacks keep their defaults.

    Raises:
        click.UsageError: the options do not make a valid configuration.
    """
    fields: dict[str, Any] = {"tune_gc": True}
    for option, name in (
        ("host", "host"),
        ("port", "port"),
        ("db", "db"),
        ("seed", "seed"),
        ("speed", "speed"),
        ("universe_size", "universe_size"),
        ("ping_interval_ms", "ping_interval_ms"),
        ("idle_timeout", "idle_timeout_s"),
        ("dex_activity", "dex_activity"),
        ("tls_cert", "tls_cert"),
        ("tls_key", "tls_key"),
        ("metrics", "metrics"),
        ("admin_port", "admin_port"),
        ("admin_host", "admin_host"),
        ("admin_token", "admin_token"),
    ):
        if option in options:
            fields[name] = options[option]
    if options.get("admin_port") is not None:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise click.UsageError(
                "--admin-port needs the admin extra: pip install 'cmcstream[admin]'"
            ) from None
    try:
        if options.get("start") is not None:
            fields["start_ms"] = _parse_start(options["start"])
        if "max_frame_bytes" in options:
            fields["max_frame_bytes"] = options["max_frame_bytes"]
            fields["transport_max_bytes"] = max(options["max_frame_bytes"], 1024 * 1024)
        if "counting" in options:
            fields["counting"] = Counting(options["counting"])
        if "billing" in options:
            fields["billing"] = BillingModel(options["billing"])
        if "slow_timeout" in options:
            fields["writer"] = WriterPolicy(slow_timeout_s=options["slow_timeout"])
        config = ServerConfig(**fields)
        if config.tls_cert is not None and config.tls_key is not None:
            from cmcstream.server.transport import tls_context

            tls_context(
                config.tls_cert, config.tls_key
            )  # a bad pair fails here, before anything starts
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return config


def _feed_args(config: ServerConfig) -> list[str]:
    """``cmcstream feed`` options that give a feed ``config``'s feed settings."""
    args = [
        *("--seed", str(config.seed), "--speed", repr(config.speed)),
        *("--universe-size", str(config.universe_size)),
        *("--dex-activity", repr(config.dex_activity)),
    ]
    if config.start_ms is not None:
        args += ["--start", str(config.start_ms)]
    return args


def _gateway_args(config: ServerConfig, port: int) -> list[str]:
    """``cmcstream gateway`` options that give a gateway ``config``'s settings on ``port``."""
    args = [
        *("--host", config.host, "--port", str(port)),
        *("--db", config.store_location),
        *("--ping-interval-ms", str(config.ping_interval_ms)),
        *("--idle-timeout", repr(config.idle_timeout_s)),
        *("--max-frame-bytes", str(config.max_frame_bytes)),
        *("--counting", config.counting.value, "--billing", config.billing.value),
        *("--slow-timeout", repr(config.writer.slow_timeout_s)),
        "--metrics" if config.metrics else "--no-metrics",
    ]
    if config.tls_cert is not None and config.tls_key is not None:
        args += ["--tls-cert", str(config.tls_cert), "--tls-key", str(config.tls_key)]
    return args


def _setup_logging(level: str, options: dict[str, Any] | None = None) -> list[str]:
    """Log as the options say (taking ``--log-json`` and ``--connection-log`` out of
    ``options``); returns those options for a child process."""
    from cmcstream.logs import setup_logging

    options = options if options is not None else {}
    json = bool(options.pop("log_json", False))
    connections = bool(options.pop("connection_log", True))
    setup_logging(level, json=json, connections=connections)
    return [
        *(["--log-json"] if json else []),
        "--connection-log" if connections else "--no-connection-log",
    ]


def _run(coro: Coroutine[Any, Any, None], loop_name: str, host: str, port: int) -> None:
    """Run a serving coroutine on the chosen loop; a port in use is a one-line error."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory(loop_name)) as runner:
            runner.run(coro)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            click.echo(f"error: {host}:{port} is already in use (try --port)", err=True)
            sys.exit(1)
        raise


@main.command()
@_gateway_options
@_feed_options
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes sharing the port. Above 1 the feed runs in a process of its "
    "own too, and all of them meet in Redis (--bus).",
)
@_bus_option(
    None,
    "Redis joining the feed and the gateways. Default: in-process with one worker, "
    f"{DEFAULT_BUS} with more.",
)
@_bus_prefix_option
@_lease_ttl_option
@_process_options
@_admin_options
@_source_options
def serve(
    workers: int,
    bus: str | None,
    bus_prefix: str,
    lease_ttl: float,
    loop_name: str,
    log_level: str,
    **options: Any,
) -> None:
    """Run the server: ws://HOST:PORT/v1, with GET /health and GET /metrics on the same port.

    Alone it is one process: the feed and one gateway over an in-process bus.
    With --workers N it is one feed process and N gateway processes sharing
    the port, supervised by this one; with --bus, other machines' gateways
    (`cmcstream gateway`) can join. --admin-port adds the admin HTTP API
    (one process only).
    """
    log_args = _setup_logging(log_level, options)
    sources = _parse_sources(options.pop("sources"))
    repeat, upstream = options.pop("repeat"), options.pop("upstream")
    runner = _runner(
        sources.whole,
        repeat,
        upstream,
        options.pop("upstream_key"),
        options.pop("linger"),
        options.pop("upstream_connections"),
    )
    dex = _evm_source(
        sources.onchain,
        options.pop("rpc"),
        options.pop("platform_id"),
        options.pop("from_block"),
        options.pop("confirmations"),
    )
    market = _exchange_source(
        sources.market,
        options.pop("exchanges"),
        options.pop("symbols"),
        options.pop("quotes"),
        options.pop("asset_ids"),
        options.pop("exchange_urls"),
        options.pop("exchange_options"),
    )
    config = _config(options)
    if workers > 1:
        if sources.named:
            raise click.UsageError(
                f"--source {sources.named[0]} runs in one process (no --workers)"
            )
        if config.admin_port is not None:
            raise click.UsageError(
                "--admin-port needs a single process (no --workers); with several, manage"
                " the shared key store with `cmcstream keys --db`"
            )
        cluster = _Cluster(bus or DEFAULT_BUS, bus_prefix, lease_ttl)
        _serve_workers(config, workers, cluster, loop_name, [*log_args, "--log-level", log_level])
        return
    single: _Cluster | None = None
    if bus is not None:
        single = _Cluster(bus, bus_prefix, lease_ttl)
        single.require("--bus joins processes through Redis")
    store = _open_store(config.store_location)
    try:
        about = _describe(sources.whole, config.speed, repeat, upstream)
        _run(
            _serve(config, store, single, dex, market, runner, about),
            loop_name,
            config.host,
            config.port,
        )
    finally:
        store.close()


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop for ``serve``: uvloop's cuts the per-connection cost of the
    asyncio machinery (accepting, handshakes) that a connect storm is made of."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise click.UsageError("uvloop is not installed (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def _parse_start(text: str) -> int:
    """Epoch ms from ``--start``: digits are epoch ms, anything else ISO 8601 (UTC if no zone)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start: not an ISO 8601 time or epoch ms: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _run_node(node: App, banner: Callable[[], None] | None) -> None:
    """Start ``node``, print its banner, and serve until SIGINT or SIGTERM, or until the
    supervisor that started this process is gone.

    The signals are caught before the start, so one that comes during it stops
    the node cleanly as soon as it has started.
    """
    from cmcstream.workers import notify_ready, watch_parent

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(watch_parent(stop))
    try:
        await node.start()
        notify_ready()
        if banner is not None:
            banner()
        await node.serve_until(stop)
    finally:
        watcher.cancel()


async def _serve(
    config: ServerConfig,
    store: Store,
    cluster: _Cluster | None,
    dex: Callable[[], Any] | None = None,
    market: Callable[[], Any] | None = None,
    runner: Callable[[ServerConfig, Any], Any] | None = None,
    about: str | None = None,
) -> None:
    from cmcstream.app import App  # the server's imports are only paid by `serve`
    from cmcstream.bus.memory import MemoryBus
    from cmcstream.feed import Feed

    demo = _demo_key(store)
    started = time.monotonic()
    exchanges: Any = None  # the exchange source, when it is the market's
    bus: Any = None
    leases = None
    if cluster is not None:
        leases = cluster.leases()
        bus = cluster.bus(leases.gateway_id)
    if runner is not None:
        # A replay or a relay in place of the feed, on the app's bus.
        bus = bus if bus is not None else MemoryBus()
        node = App(config, store, bus=bus, feed=runner(config, bus), leases=leases)
    elif dex is None and market is None:
        node = App(config, store, bus=bus, leases=leases)
    else:
        # Another source: the feed is built here, on the app's bus.
        bus = bus if bus is not None else MemoryBus()
        exchanges = market() if market is not None else None
        feed = Feed(config, bus, dex=dex() if dex is not None else None, market=exchanges)
        node = App(config, store, bus=bus, feed=feed, leases=leases)

    def banner() -> None:
        click.echo(f"cmcstream {__version__} listening on {node.url}")
        admin = node.admin.url if node.admin is not None else None
        _echo_endpoints(config, node.port, store.location, demo, store.count, admin)
        ready = f"ready in {time.monotonic() - started:.1f} s"
        if about is not None:
            click.echo(f"  source: {about} ({ready})")
        elif exchanges is not None:
            names = ", ".join(f"{m.venue} {m.symbol}" for m in exchanges.markets)
            click.echo(f"  market: exchanges ({names}) ({ready})")
        else:
            click.echo(
                f"  market: {config.universe_size} assets, seed {config.seed},"
                f" speed {config.speed:g}x ({ready})"
            )
        if cluster is not None:
            click.echo(f"  bus: {cluster.url} (prefix {cluster.prefix})")
        loop = asyncio.get_running_loop()
        click.echo(f"  event loop: {type(loop).__module__.partition('.')[0]}")
        if runner is None:
            click.echo(f"  on-chain engine: {engine_build()}")
        click.echo("Press Ctrl-C to stop.")

    await _run_node(node, banner)
    click.echo("stopped.")


def _echo_endpoints(
    config: ServerConfig,
    port: int,
    location: str,
    demo: KeyRecord | None,
    count: Callable[[], int],
    admin: str | None = None,
) -> None:
    """The banner's lines of every server: where to reach it, the key store, a key to try."""
    base = f"{'http' if config.tls_cert is None else 'https'}://{config.host}:{port}"
    click.echo(f"  health:   {base}/health")
    click.echo(f"  playground: {base}/")
    if config.metrics:
        click.echo(f"  metrics:  {base}/metrics")
    if admin is not None:
        click.echo(f"  admin API: {admin}  (OpenAPI: {admin}/openapi.json)")
    click.echo(f"  key store: {location}")
    if demo is not None:
        click.echo(f"  demo key: {demo.key}  (plan {demo.plan})")
    else:
        click.echo(f"  {count()} keys in the store; see `cmcstream keys list`")


def _demo_key(store: Store) -> KeyRecord | None:
    """Create the demo key in an empty store; otherwise find it if it is still usable."""
    if store.count() == 0:
        return store.create(plan=DEFAULT_PLAN, name="demo")
    return _find_demo_key(store)


def _find_demo_key(store: Store) -> KeyRecord | None:
    for record in store.list():
        if record.name == "demo" and record.status is KeyStatus.ACTIVE:
            return record
    return None


def _serve_workers(
    config: ServerConfig, workers: int, cluster: _Cluster, loop_name: str, log_args: list[str]
) -> None:
    """One feed process and ``workers`` gateway processes on one port, supervised from here."""
    from cmcstream.workers import ChildFailed, Role, Supervisor, python_argv, reserve_port

    cluster.require(f"--workers {workers} runs a process per gateway, which meet in Redis")
    try:
        reserved = reserve_port(config.host, config.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            click.echo(
                f"error: {config.host}:{config.port} is already in use (try --port)", err=True
            )
            sys.exit(1)
        raise
    try:
        port = int(reserved.getsockname()[1])
        store = _open_store(config.store_location)
        try:
            demo = _demo_key(store)
            keys = store.count()
        finally:
            store.close()
        shared = [
            *("--bus", cluster.url, "--bus-prefix", cluster.prefix),
            *("--loop", loop_name, *log_args),
        ]
        feed = Role("feed", python_argv("feed", *_feed_args(config), *shared))
        gateway_args = [
            *_gateway_args(config, port),
            *("--reuse-port", "--lease-ttl", repr(cluster.lease_ttl_s)),
            *shared,
        ]
        gateways = [
            Role(f"gateway {i}", python_argv("gateway", *gateway_args))
            for i in range(1, workers + 1)
        ]
        supervisor = Supervisor([[feed], gateways], report=lambda line: click.echo(line, err=True))

        def banner() -> None:
            scheme = "ws" if config.tls_cert is None else "wss"
            click.echo(f"cmcstream {__version__} listening on {scheme}://{config.host}:{port}/v1")
            location = _safe_location(config.store_location)
            _echo_endpoints(config, port, location, demo, lambda: keys)
            click.echo(
                f"  market: {config.universe_size} assets, seed {config.seed},"
                f" speed {config.speed:g}x"
            )
            pids = ", ".join(f"{name} {pid}" for name, pid in supervisor.pids.items())
            click.echo(f"  processes: {pids}")
            click.echo(f"  bus: {cluster.url} (prefix {cluster.prefix})")
            click.echo("Press Ctrl-C to stop.")

        try:
            asyncio.run(_supervise(supervisor, banner))
        except ChildFailed as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        click.echo("stopped.")
    finally:
        reserved.close()


async def _supervise(supervisor: Supervisor, banner: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    starting = loop.create_task(supervisor.start())
    stopping = loop.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()  # it stops the children it started
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return
    stopping.cancel()
    starting.result()
    banner()
    await supervisor.run(stop)


@main.command()
@_feed_options
@_bus_option(DEFAULT_BUS, "Redis, where the gateways meet this feed.")
@_bus_prefix_option
@_process_options
def feed(bus: str, bus_prefix: str, loop_name: str, log_level: str, **options: Any) -> None:
    """Run the feed alone: the simulated market and DEX world, published through Redis.

    Run one per deployment; gateways (`cmcstream gateway`, on this machine or
    others) serve its pushes to clients.
    """
    _setup_logging(log_level, options)
    config = _config(options)
    cluster = _Cluster(bus, bus_prefix, 0.0)
    cluster.require("a feed publishes through Redis")
    _run(_feed(config, cluster), loop_name, config.host, config.port)


async def _feed(config: ServerConfig, cluster: _Cluster) -> None:
    from cmcstream.app import App
    from cmcstream.workers import supervised

    started = time.monotonic()
    node = App(config, bus=cluster.bus(), gateway=False)

    def banner() -> None:
        click.echo(
            f"cmcstream {__version__} feed publishing on {cluster.url} (prefix {cluster.prefix})"
        )
        ready = f"ready in {time.monotonic() - started:.1f} s"
        source = getattr(node.feed, "market", None)
        venues = getattr(getattr(source, "source", None), "markets", None)
        if venues is not None:
            names = ", ".join(f"{m.venue} {m.symbol}" for m in venues)
            click.echo(f"  market: exchanges ({names}) ({ready})")
        else:
            click.echo(
                f"  market: {config.universe_size} assets, seed {config.seed},"
                f" speed {config.speed:g}x ({ready})"
            )
        click.echo(f"  on-chain engine: {engine_build()}")
        click.echo("Press Ctrl-C to stop.")

    quiet = supervised()  # the supervisor prints the banner
    await _run_node(node, None if quiet else banner)
    if not quiet:
        click.echo("stopped.")


@main.command()
@_gateway_options
@_bus_option(DEFAULT_BUS, "Redis, where this gateway meets the feed and the other gateways.")
@_bus_prefix_option
@_lease_ttl_option
@click.option(
    "--reuse-port",
    is_flag=True,
    help="Share the port with other gateways on this machine (SO_REUSEPORT).",
)
@_process_options
def gateway(
    bus: str,
    bus_prefix: str,
    lease_ttl: float,
    reuse_port: bool,
    loop_name: str,
    log_level: str,
    **options: Any,
) -> None:
    """Run one gateway: clients' connections to the pushes of the feed on Redis.

    Run as many as needed, on this machine (--reuse-port) or others, with the
    same --bus and a shared key store. A key's connection limit holds across all.
    """
    _setup_logging(log_level, options)
    config = dataclasses.replace(_config(options), reuse_port=reuse_port)
    cluster = _Cluster(bus, bus_prefix, lease_ttl)
    cluster.require("a gateway receives the feed through Redis")
    store = _open_store(config.store_location)
    try:
        _run(_gateway(config, store, cluster), loop_name, config.host, config.port)
    finally:
        store.close()


async def _gateway(config: ServerConfig, store: Store, cluster: _Cluster) -> None:
    from cmcstream.app import App
    from cmcstream.workers import supervised

    leases = cluster.leases()
    node = App(config, store, bus=cluster.bus(leases.gateway_id), feed=False, leases=leases)

    def banner() -> None:
        click.echo(f"cmcstream {__version__} gateway listening on {node.url}")
        admin = node.admin.url if node.admin is not None else None
        demo = _find_demo_key(store)
        _echo_endpoints(config, node.port, store.location, demo, store.count, admin)
        click.echo(f"  bus: {cluster.url} (prefix {cluster.prefix})")
        click.echo("Press Ctrl-C to stop.")

    quiet = supervised()  # the supervisor prints the banner
    await _run_node(node, None if quiet else banner)
    if not quiet:
        click.echo("stopped.")


# -- where pushes come from ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    name: str  # sim, evm, replay or relay
    path: Path | None = None  # the recording of a replay


@dataclass(frozen=True, slots=True)
class _Sources:
    market: str = "sim"  # sim or exchanges
    onchain: str = "sim"  # sim or evm
    whole: _Source | None = None  # a replay or a relay: every channel

    @property
    def named(self) -> list[str]:
        """The sources other than the simulators, as the user named them."""
        named = [self.whole.name] if self.whole is not None else []
        return named + [side for side in (self.market, self.onchain) if side != "sim"]


_MARKET_SOURCES = ("sim", "exchanges")
_ONCHAIN_SOURCES = ("sim", "evm")


def _parse_sources(values: Sequence[str]) -> _Sources:
    """The repeated ``--source``: at most one market source and one on-chain source (a side
    not named is simulated), or a replay or a relay alone, which feed every channel."""
    market: set[str] = set()
    onchain: set[str] = set()
    whole: list[_Source] = []
    for value in values:
        if value in _MARKET_SOURCES or value in _ONCHAIN_SOURCES:
            (market if value in _MARKET_SOURCES else onchain).add(value)
        else:
            whole.append(_parse_whole(value))
    market.discard("sim")
    onchain.discard("sim")
    if whole:
        if len(whole) > 1 or market or onchain:
            raise click.UsageError(
                "--source replay:FILE and --source relay feed every channel: name no other source"
            )
        return _Sources(whole=whole[0])
    if len(market) > 1 or len(onchain) > 1:
        raise click.UsageError("--source: one market source and one on-chain source at most")
    return _Sources(market=min(market, default="sim"), onchain=min(onchain, default="sim"))


def _parse_whole(value: str) -> _Source:
    if value == "relay":
        return _Source(value)
    name, colon, path = value.partition(":")
    if name == "replay":
        if not colon or not path:
            raise click.UsageError("--source replay needs a file: --source replay:FILE.jsonl")
        if not Path(path).is_file():
            raise click.UsageError(f"--source replay: no file at {path}")
        return _Source("replay", Path(path))
    raise click.UsageError(
        f"--source: expected sim, exchanges, evm, replay:FILE or relay, not {value!r}"
    )


def _describe(source: _Source | None, speed: float, repeat: bool, upstream: str) -> str | None:
    if source is None:
        return None
    if source.name == "replay":
        return f"replay of {source.path} at {speed:g}x" + (", repeated" if repeat else "")
    return f"relay of {upstream}"


def _runner(
    source: _Source | None,
    repeat: bool,
    upstream: str,
    key: str | None,
    linger: float,
    connections: int,
) -> Callable[[ServerConfig, Any], Any] | None:
    """What runs in place of the feed for a replay or a relay: built on the app's bus."""
    if source is None:
        return None
    if source.name == "replay":
        path = source.path
        assert path is not None

        def replay(config: ServerConfig, bus: Any) -> Any:
            from cmcstream.feed.replay import Replay

            return Replay(path, bus, speed=config.speed, loop=repeat)

        return replay
    if source.name == "relay":
        if not key:
            raise click.UsageError("--source relay needs --upstream-key (or CMC_PRO_API_KEY)")

        def relay(config: ServerConfig, bus: Any) -> Any:
            from cmcstream.relay import Relay

            meter = make_meter(config.billing, config.credit_rate)
            return Relay(
                bus, upstream, key, meter=meter, linger_s=linger, max_connections=connections
            )

        return relay
    return None


def _exchange_source(
    side: str,
    exchanges: Sequence[str],
    symbols: str,
    quotes: Sequence[str],
    asset_ids: Sequence[str],
    exchange_urls: Sequence[str],
    exchange_options: Sequence[str],
) -> Callable[[], Any] | None:
    if side == "sim":
        if exchanges:
            raise click.UsageError("--exchange needs --source exchanges")
        return None
    if not exchanges:
        raise click.UsageError("--source exchanges needs --exchange ID (binance, kraken, …)")
    try:
        import ccxt.pro  # only to fail here, with the way to install it

        from cmcstream.sources.exchanges.assets import AssetTable, parse_asset
        from cmcstream.sources.exchanges.source import ExchangeSource
    except ImportError:
        raise click.UsageError(
            "--source exchanges needs the exchanges extra: pip install 'cmcstream[exchanges]'"
        ) from None
    missing = [e for e in exchanges if not hasattr(ccxt.pro, e)]
    if missing:
        raise click.UsageError(f"--exchange: ccxt has no WebSocket client for {', '.join(missing)}")
    try:
        table = AssetTable.build(
            quotes or ("USD", "USDT", "USDC"), dict(map(parse_asset, asset_ids))
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    urls: dict[str, dict[str, str]] = {}
    for text in exchange_urls:
        ex_id, _, rest = text.partition(":")
        path, sep, url = rest.partition("=")
        if not sep or not path or not url or ex_id not in exchanges:
            raise click.UsageError(
                f"--exchange-url: expected ID:PATH=URL for one of the --exchange ids, not {text!r}"
            )
        urls.setdefault(ex_id, {})[path] = url
    client_options: dict[str, dict[str, Any]] = {}
    for text in exchange_options:
        ex_id, _, rest = text.partition(":")
        key, sep, raw = rest.partition("=")
        try:
            value = msgspec.json.decode(raw) if sep else None
        except msgspec.DecodeError:
            value = None
        if not sep or not key or value is None or ex_id not in exchanges:
            raise click.UsageError(
                "--exchange-option: expected ID:KEY=JSON for one of the --exchange ids,"
                f" not {text!r}"
            )
        client_options.setdefault(ex_id, {})[key] = value
    wanted = [s for s in symbols.replace(" ", "").split(",") if s]

    def build() -> Any:
        return ExchangeSource(
            exchanges,
            wanted,
            quotes or ("USD", "USDT", "USDC"),
            assets=table,
            urls=urls,
            options=client_options,
        )

    return build


# -- an EVM chain as the on-chain source ----------------------------------------------------------


def _chains(rpcs: Sequence[str], platform_id: int) -> dict[int, str]:
    """``--rpc`` values by platform id: ``ID=URL``, or a bare URL for ``--platform-id``."""
    chains: dict[int, str] = {}
    for rpc in rpcs:
        head, sep, url = rpc.partition("=")
        if sep and head.strip().isdigit():
            chain = int(head)
        else:
            chain, url = platform_id, rpc
        if not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--rpc {rpc!r}: a WebSocket URL (ws://… or wss://…)")
        if chain in chains:
            raise click.UsageError(f"--rpc: two chains for platform {chain}")
        chains[chain] = url
    return chains


def _evm_source(
    source: str,
    rpcs: Sequence[str],
    platform_id: int,
    from_block: int | None,
    confirmations: int,
) -> Callable[[], Any] | None:
    if source != "evm":
        return None
    if not rpcs:
        raise click.UsageError("--source evm needs --rpc ws://HOST:PORT")
    chains = _chains(rpcs, platform_id)
    try:
        from cmcstream.sources.evm.source import EvmSource
        from cmcstream.sources.merged import MergedSource
    except ImportError:
        raise click.UsageError(
            "--source evm needs the evm extra: pip install 'cmcstream[evm]'"
        ) from None

    def build() -> Any:
        sources = [
            EvmSource(url, chain, from_block=from_block, confirmations=confirmations)
            for chain, url in chains.items()
        ]
        return sources[0] if len(sources) == 1 else MergedSource(sources)

    return build


@main.command()
@click.option("--port", default=8765, show_default=True, help="TCP port (0 picks a free one).")
@_db_option
@click.option("--seed", default=0, show_default=True, help="Seed of the trading loop.")
@click.option("--rate", default=2.0, show_default=True, help="Trading actions per second.")
def devchain(port: int, db: str | None, seed: int, rate: float) -> None:
    """A local chain to stream from: anvil, Uniswap V2 and V3, three ERC-20s and seeded traders.

    Needs the chain tools of the source checkout (`npm ci --prefix chain`) and the
    evm extra. Serves the on-chain channels of platform 1 from that chain.
    """
    _setup_logging("warning")
    try:
        from cmcstream.sources.evm.anvil import Anvil, ChainToolsMissing
    except ImportError:
        raise click.UsageError(
            "devchain needs the evm extra: pip install 'cmcstream[evm]'"
        ) from None
    try:
        chain = Anvil()
    except ChainToolsMissing as exc:
        raise click.UsageError(str(exc)) from None
    config = ServerConfig(port=port, db=db, dex_warm_up=False)
    store = _open_store(config.store_location)
    try:
        with chain:
            click.echo(f"anvil on {chain.ws_url} (log {chain.log_path})")
            asyncio.run(_devchain(config, store, chain.ws_url, seed, rate))
    finally:
        store.close()


async def _devchain(config: ServerConfig, store: Store, rpc: str, seed: int, rate: float) -> None:
    from web3 import AsyncWeb3, WebSocketProvider

    from cmcstream.sources.evm.devchain import DevChain
    from cmcstream.sources.evm.source import EvmSource

    async with AsyncWeb3(WebSocketProvider(rpc)) as w3:
        dex = await DevChain.deploy(w3, seed=seed)
        for symbol, token in dex.tokens.items():
            click.echo(f"  token {symbol:<5} {token.address.lower()}")
        for name, pair in dex.pairs.items():
            click.echo(f"  pool  {name + ' v2':<13} {pair.address.lower()}")
        for name, pool in dex.pools.items():
            click.echo(f"  pool  {name + ' v3':<13} {pool.address.lower()}")

        stopping = asyncio.Event()

        async def trade() -> None:
            # A flag as well as cancellation: a cancel landing as a web3 call
            # completes can be lost, and the loop must still end.
            while not stopping.is_set():
                await asyncio.sleep(dex.rng.expovariate(rate))
                await dex.act()

        trading = asyncio.get_running_loop().create_task(trade(), name="devchain-trading")
        try:
            await _serve(config, store, None, lambda: EvmSource(rpc, 1, from_block=0))
        finally:
            stopping.set()
            trading.cancel()
            await asyncio.wait([trading], timeout=5)


# -- keys ----------------------------------------------------------------------------------------

_server_options = _options(
    click.option(
        "--server",
        metavar="URL",
        default=None,
        envvar="CMCSTREAM_ADMIN_URL",
        help="Manage the keys of a running server through its admin API"
        " (http://HOST:ADMIN_PORT) instead of a local --db. Env: CMCSTREAM_ADMIN_URL.",
    ),
    click.option(
        "--admin-token",
        default=None,
        envvar="CMCSTREAM_ADMIN_TOKEN",
        help="The admin API's bearer token (with --server). Env: CMCSTREAM_ADMIN_TOKEN.",
    ),
)


@contextlib.contextmanager
def _remote(server: str, token: str | None) -> Iterator[AdminClient]:
    """The admin API client of ``server``; its errors become one-line command errors."""
    if not token:
        raise click.UsageError("--server needs --admin-token (or CMCSTREAM_ADMIN_TOKEN)")
    try:
        from cmcstream.admin_client import AdminClient, AdminError
    except ImportError:
        raise click.UsageError(
            "--server needs the admin extra: pip install 'cmcstream[admin]'"
        ) from None
    try:
        with AdminClient(server, token) as client:
            yield client
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def keys() -> None:
    """Manage API keys and see their usage.

    Locally (--db), or on a running server through its admin API (--server,
    --admin-token), where keys are named by their id: the listings show ids,
    and a key's secret is shown once, when it is created.
    """


@keys.command("create")
@click.option(
    "--plan",
    type=click.Choice(list(PLANS), case_sensitive=False),
    default=DEFAULT_PLAN,
    show_default=True,
)
@click.option(
    "--status",
    type=click.Choice([s.value for s in KeyStatus]),
    default=KeyStatus.ACTIVE.value,
    show_default=True,
)
@click.option("--credits", type=float, default=None, help="Monthly credits (default: the plan's).")
@click.option("--name", default="", help="A label for humans.")
@_db_option
@_server_options
def keys_create(
    plan: str,
    status: str,
    credits: float | None,
    name: str,
    db: str | None,
    server: str | None,
    admin_token: str | None,
) -> None:
    """Create a key and print it (only the key, for scripts)."""
    if server is not None:
        with _remote(server, admin_token) as remote:
            record = remote.create(plan=plan, status=status, credits=credits, name=name)
        click.echo(record.key)
        return
    store = _open_store(db)
    try:
        record = store.create(plan=plan, status=status, credits=credits, name=name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        store.close()
    click.echo(record.key)


@keys.command("list")
@_db_option
@_server_options
def keys_list(db: str | None, server: str | None, admin_token: str | None) -> None:
    """List every key with this month's usage (by id with --server)."""
    month = month_of(time.time_ns() // 1_000_000)
    if server is not None:
        with _remote(server, admin_token) as remote:
            rows = remote.list()
        month = rows[0][1].month if rows else month
    else:
        store = _open_store(db)
        try:
            rows = [(r, store.usage(r.key, month)) for r in store.list()]
        finally:
            store.close()
    if not rows:
        click.echo("no keys")
        return
    click.echo(f"{'KEY':36}  {'NAME':12}  {'PLAN':12}  {'STATUS':8}  CREDITS ({month})  MESSAGES")
    for record, usage in rows:
        click.echo(
            f"{record.key:36}  {record.name[:12]:12}  {record.plan:12}  {record.status.value:8}  "
            f"{usage.credits_text} / {format_credits(record.monthly_milli)}  {usage.messages:,}"
        )


def _get(store: Store, key: str) -> KeyRecord:
    record = store.get(key)
    if record is None:
        store.close()
        raise click.ClickException(f"no such key: {key}")
    return record


@keys.command("show")
@click.argument("key")
@_db_option
@_server_options
def keys_show(key: str, db: str | None, server: str | None, admin_token: str | None) -> None:
    """Show one key and its usage this month (KEY: the key, or its id with --server)."""
    if server is not None:
        with _remote(server, admin_token) as remote:
            found = remote.show(key)
        if found is None:
            raise click.ClickException(f"no such key: {key}")
        record, usage = found
    else:
        store = _open_store(db)
        try:
            record = _get(store, key)
            usage = store.usage(key, month_of(time.time_ns() // 1_000_000))
        finally:
            store.close()
    plan = PLANS[record.plan]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created_ms / 1000))
    for label, value in (
        ("key", record.key),
        ("name", record.name),
        ("plan", record.plan),
        ("status", record.status.value),
        ("created", created),
        ("websocket", "yes" if plan.websocket else "no"),
        ("connections", plan.connection_limit),
        ("subscriptions", plan.subscription_limit),
        (
            "credits",
            f"{usage.credits_text} of {format_credits(record.monthly_milli)} ({usage.month})",
        ),
        ("messages", f"{usage.messages:,}"),
    ):
        click.echo(f"{label + ':':15}{value}")


def _set_status(
    key: str, db: str | None, server: str | None, token: str | None, status: KeyStatus
) -> None:
    if server is not None:
        with _remote(server, token) as remote:
            found = remote.set_status(key, status)
    else:
        store = _open_store(db)
        try:
            found = store.set_status(key, status)
        finally:
            store.close()
    if not found:
        raise click.ClickException(f"no such key: {key}")
    click.echo(f"{key} {status.value}")


@keys.command("disable")
@click.argument("key")
@_db_option
@_server_options
def keys_disable(key: str, db: str | None, server: str | None, admin_token: str | None) -> None:
    """Disable a key (connections get 4101; open ones are closed within seconds)."""
    _set_status(key, db, server, admin_token, KeyStatus.DISABLED)


@keys.command("enable")
@click.argument("key")
@_db_option
@_server_options
def keys_enable(key: str, db: str | None, server: str | None, admin_token: str | None) -> None:
    """Make a key active again."""
    _set_status(key, db, server, admin_token, KeyStatus.ACTIVE)


@keys.command("delete")
@click.argument("key")
@_db_option
@_server_options
def keys_delete(key: str, db: str | None, server: str | None, admin_token: str | None) -> None:
    """Delete a key and its usage."""
    if server is not None:
        with _remote(server, admin_token) as remote:
            found = remote.delete(key)
    else:
        store = _open_store(db)
        try:
            found = store.delete(key)
        finally:
            store.close()
    if not found:
        raise click.ClickException(f"no such key: {key}")
    click.echo(f"{key} deleted")


# -- world and market ---------------------------------------------------------------------------


def _chain_option(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    from cmcstream.protocol.platforms import PlatformTable
    from cmcstream.sources.simulator.dex_world import CHAINS

    if value is None or value in CHAINS:
        return value
    table = PlatformTable()
    known = ", ".join(
        f"{c} ({p.name})" if (p := table.get(c)) is not None else str(c) for c in CHAINS
    )
    raise click.BadParameter(f"{value} is not a simulated chain; the chains are {known}")


def _echo_json(document: Any) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())


@main.command()
@click.option("--seed", default=0, show_default=True, help="The seed `serve` runs with.")
@click.option(
    "--chain",
    type=int,
    default=None,
    callback=_chain_option,
    help="Only this platform id (1, 14, 16, 199).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
def world(seed: int, chain: int | None, as_json: bool) -> None:
    """List the simulated DEX world's tokens, pools and tagged wallets, to subscribe to."""
    from cmcstream.sources.simulator.dex_world import DexWorld

    built = DexWorld.build(seed)
    tokens = [t for t in built.tokens if chain is None or t.chain == chain]
    pools = [p for p in built.pools if chain is None or p.chain == chain]
    wallets = [w for w in built.wallets if (chain is None or w.chain == chain) and w.tags]
    symbols = {(t.chain, t.address): t.symbol for t in built.tokens}
    busiest = {(c, built.busiest_token(c).address) for c in built.chains}
    if as_json:
        _echo_json(
            {
                "tokens": [
                    {
                        "platform_id": t.chain,
                        "address": t.address,
                        "symbol": t.symbol,
                        "name": t.name,
                        "decimals": t.decimals,
                        "busiest": (t.chain, t.address) in busiest,
                    }
                    for t in tokens
                ],
                "pools": [
                    {
                        "platform_id": p.chain,
                        "pool_address": p.address,
                        "dex": p.dex,
                        "token0": p.token0,
                        "token1": p.token1,
                        "pair": f"{symbols[(p.chain, p.token0)]}/{symbols[(p.chain, p.token1)]}",
                    }
                    for p in pools
                ],
                "wallets": [
                    {"platform_id": w.chain, "wallet_address": w.address, "tags": list(w.tags)}
                    for w in wallets
                ],
            }
        )
        return
    click.echo(f"TOKENS (seed {seed}; * the busiest on its chain)")
    click.echo(f"   {'PID':>4}  {'SYMBOL':<10} ADDRESS")
    for t in tokens:
        mark = "*" if (t.chain, t.address) in busiest else " "
        click.echo(f" {mark} {t.chain:>4}  {t.symbol:<10} {t.address}")
    click.echo("\nPOOLS")
    click.echo(f"   {'PID':>4}  {'PAIR':<16} {'DEX':<16} POOL ADDRESS")
    for p in pools:
        pair = f"{symbols[(p.chain, p.token0)]}/{symbols[(p.chain, p.token1)]}"
        click.echo(f"   {p.chain:>4}  {pair:<16} {p.dex:<16} {p.address}")
    click.echo("\nTAGGED WALLETS")
    click.echo(f"   {'PID':>4}  {'TAGS':<24} WALLET ADDRESS")
    for w in wallets:
        click.echo(f"   {w.chain:>4}  {','.join(w.tags):<24} {w.address}")


@main.command()
@click.option("--seed", default=0, show_default=True, help="The seed `serve` runs with.")
@click.option(
    "--universe-size",
    type=click.IntRange(min=0),
    default=5000,
    show_default=True,
    help="The --universe-size `serve` runs with.",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the first N by rank.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def market(seed: int, universe_size: int, limit: int | None, as_json: bool) -> None:
    """List the simulated market's assets (ids for market@crypto_latest_price), by rank.

    The top ones are real CoinMarketCap ids, symbols and names; the rest are
    generated from the seed (ids from 100000 up).
    """
    from cmcstream.sources.simulator.universe import Universe

    assets = list(Universe.load(universe_size, seed=seed))[:limit]
    if as_json:
        _echo_json(
            {
                "assets": [
                    {
                        "rank": a.rank,
                        "id": a.cid,
                        "symbol": a.symbol,
                        "name": a.name,
                        "generated": a.generated,
                    }
                    for a in assets
                ]
            }
        )
        return
    click.echo(f"MARKET (seed {seed}, {universe_size} assets; ids from 100000 up are generated)")
    click.echo(f"{'RANK':>5}  {'ID':>7}  {'SYMBOL':<10} NAME")
    for a in assets:
        click.echo(f"{a.rank:>5}  {a.cid:>7}  {a.symbol:<10} {a.name}")


# -- tail and record -----------------------------------------------------------------------------


def _stream_options(command: Callable[..., None]) -> Callable[..., None]:
    """The subscriptions, selectors, endpoint and key shared by ``tail`` and ``record``."""
    from cmcstream.client import DEFAULT_URL

    options = [
        click.option(
            "--sub",
            "subs",
            multiple=True,
            metavar="CHANNEL[:PARAMS]",
            help="A subscription, repeatable: onchain@kline:platform_id=14,address=0x…,"
            "interval=1m, or CHANNEL:{JSON params}. Params left out come from the options below.",
        ),
        click.option(
            "--subs-file",
            "subs_files",
            multiple=True,
            type=click.File("r", encoding="utf-8"),
            help="Subscriptions from a file ('-' for stdin): a JSON list, or one a line "
            '(a --sub value or {"channel": ..., "params": {...}}).',
        ),
        click.option("--ids", multiple=True, help="crypto_ids, e.g. 1,1027 (market channel)."),
        click.option("--platform", type=int, default=None, help="platform_id, e.g. 14 (BSC)."),
        click.option("--address", multiple=True, help="Token address(es), comma-separated."),
        click.option("--interval", default=None, help="kline / unique_trader interval (1m)."),
        click.option("--pool", multiple=True, help="Pool address(es) for onchain@pool_metric."),
        click.option(
            "--wallet", multiple=True, help="Wallet address(es) for onchain@holder_wallet_update."
        ),
        click.option(
            "--url",
            default=DEFAULT_URL,
            show_default=True,
            envvar="CMCSTREAM_URL",
            help="Endpoint; ws://127.0.0.1:8765/v1 for `cmcstream serve`. Env: CMCSTREAM_URL.",
        ),
        click.option(
            "--key", envvar="CMC_PRO_API_KEY", default=None, help="API key. Env: CMC_PRO_API_KEY."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _subscriptions(
    channel: str | None,
    key: str | None,
    subs: tuple[str, ...],
    subs_files: tuple[IO[str], ...],
    **selectors: Any,
) -> tuple[str, list[Sub]]:
    from cmcstream.console.selectors import Selectors
    from cmcstream.console.subscriptions import collect

    if not key:
        raise click.UsageError("no API key: pass --key or set CMC_PRO_API_KEY")
    try:
        files = [(f.name, f.read()) for f in subs_files]
        return key, collect(channel, subs, files, Selectors(**selectors))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _run_stream(coro: Coroutine[Any, Any, int]) -> int:
    """Run a stream command; its failures end it with a message naming the endpoint."""
    from cmcstream.console.session import StreamFailed

    try:
        return asyncio.run(coro)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)  # interrupted before the stream was up
    except StreamFailed as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("channel", required=False)
@_stream_options
@click.option("--json", "as_json", is_flag=True, help="JSON lines on stdout instead of a table.")
@click.option("--count", type=int, default=None, help="Stop after this many pushes.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
def tail(
    channel: str | None,
    key: str | None,
    url: str,
    as_json: bool,
    count: int | None,
    duration: float | None,
    subs: tuple[str, ...],
    subs_files: tuple[IO[str], ...],
    **selectors: Any,
) -> None:
    """Watch CHANNEL, or every --sub, live: a table updating in place, or JSON lines (--json).

    \b
    Examples:
      cmcstream tail market@crypto_latest_price --ids 1,1027 --url ws://127.0.0.1:8765/v1
      cmcstream tail onchain@kline --platform 14 --address 0x... --interval 1m --json
      cmcstream tail --platform 14 --address 0x... \\
          --sub onchain@transaction --sub onchain@kline:interval=5m \\
          --sub market@crypto_latest_price:ids=1,1027
    """
    from cmcstream.console.tail import tail as run

    key, wanted = _subscriptions(channel, key, subs, subs_files, **selectors)
    _run_stream(run(url, key, wanted, as_json=as_json, count=count, duration=duration))


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("channel", required=False)
@_stream_options
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
def record(
    out: Path,
    channel: str | None,
    key: str | None,
    url: str,
    duration: float | None,
    subs: tuple[str, ...],
    subs_files: tuple[IO[str], ...],
    **selectors: Any,
) -> None:
    """Append every frame of CHANNEL, or of every --sub, to OUT (JSON lines, with receive times).

    For replay and bug reports; reconnects and outages are recorded too. All the
    subscriptions share one stream, spread over as few connections as the
    plan's per-connection limit allows. Ctrl-C or SIGTERM ends it cleanly.
    """
    from cmcstream.console.record import record as run

    key, wanted = _subscriptions(channel, key, subs, subs_files, **selectors)
    frames = _run_stream(run(out, url, key, wanted, duration))
    click.echo(f"{frames} frames written to {out}", err=True)
