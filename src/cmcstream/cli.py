"""The ``cmcstream`` command: ``serve``, ``keys``, ``world``, ``market``, ``tail``, ``record``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from cmcstream.config import ServerConfig, WriterPolicy
from cmcstream.engine import build as engine_build
from cmcstream.protocol.billing import BillingModel, format_credits
from cmcstream.protocol.plans import DEFAULT_PLAN, PLANS
from cmcstream.protocol.session import Counting
from cmcstream.server.keystore import KeyRecord, KeyStatus, KeyStore, month_of
from cmcstream.version import __version__

if TYPE_CHECKING:
    from cmcstream.console.subscriptions import Sub

__all__ = ["main"]

_db_option = click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="CMCSTREAM_DB",
    help="Key store (SQLite). Default: keys.db in the user's data directory.",
)


def _open_store(db: Path | None) -> KeyStore:
    return KeyStore(db if db is not None else ServerConfig().resolved_db_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cmcstream")
def main() -> None:
    """A self-hostable CoinMarketCap WebSocket API server, and its tools."""


def _evm_options(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option(
            "--source",
            type=click.Choice(["sim", "evm"]),
            default="sim",
            show_default=True,
            help="On-chain data: the DEX simulator, or an EVM chain over JSON-RPC (--rpc).",
        ),
        click.option("--rpc", default=None, help="The chain's WebSocket JSON-RPC URL (ws://…)."),
        click.option(
            "--platform-id", default=1, show_default=True, help="The chain's platform id."
        ),
        click.option(
            "--from-block",
            type=int,
            default=None,
            help="Back-fill from this block (default: head).",
        ),
        click.option("--confirmations", default=0, show_default=True, help="Blocks on top."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# -- serve ---------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, help="TCP port (0 picks a free one).")
@_db_option
@click.option("--seed", default=0, show_default=True, help="Simulator seed (same seed, same data).")
@click.option(
    "--speed", default=1.0, show_default=True, help="Simulated seconds per wall-clock second."
)
@click.option(
    "--start",
    default=None,
    metavar="TIME",
    help="Simulated start time: ISO 8601 (2026-05-13T00:00:00Z) or epoch ms. Default: now.",
)
@click.option(
    "--universe-size", default=5000, show_default=True, help="Assets in the simulated market."
)
@click.option("--ping-interval-ms", default=10_000, show_default=True, help="Sent in welcome.")
@click.option(
    "--idle-timeout", default=60.0, show_default=True, help="Seconds before an idle close (1001)."
)
@click.option(
    "--max-frame-bytes", default=65536, show_default=True, help="Longer requests get 2203."
)
@click.option(
    "--counting",
    type=click.Choice([c.value for c in Counting]),
    default=Counting.PER_ITEM.value,
    show_default=True,
    help="What sub_count counts.",
)
@click.option(
    "--billing",
    type=click.Choice([b.value for b in BillingModel]),
    default=BillingModel.PER_SUBSCRIPTION.value,
    show_default=True,
    help="Credit model.",
)
@click.option(
    "--dex-activity",
    default=1.0,
    show_default=True,
    help="Multiplies the simulated DEX world's trading rates.",
)
@click.option(
    "--slow-timeout",
    default=30.0,
    show_default=True,
    help="Seconds a reader may stay behind before it is closed with 1011.",
)
@click.option(
    "--loop",
    "loop_name",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    help="Event loop; auto takes uvloop where it is installed.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (with chain) to serve wss:// (needs --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The certificate's private key (PEM).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
@_evm_options
def serve(
    host: str,
    port: int,
    db: Path | None,
    seed: int,
    speed: float,
    start: str | None,
    universe_size: int,
    ping_interval_ms: int,
    idle_timeout: float,
    max_frame_bytes: int,
    counting: str,
    billing: str,
    dex_activity: float,
    slow_timeout: float,
    loop_name: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_level: str,
    **evm: Any,
) -> None:
    """Run the server: ws://HOST:PORT/v1, with GET /health on the same port."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = ServerConfig(
            host=host,
            port=port,
            db_path=db,
            seed=seed,
            speed=speed,
            start_ms=None if start is None else _parse_start(start),
            universe_size=universe_size,
            ping_interval_ms=ping_interval_ms,
            idle_timeout_s=idle_timeout,
            max_frame_bytes=max_frame_bytes,
            transport_max_bytes=max(max_frame_bytes, 1024 * 1024),
            counting=Counting(counting),
            billing=BillingModel(billing),
            dex_activity=dex_activity,
            writer=WriterPolicy(slow_timeout_s=slow_timeout),
            tune_gc=True,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        if tls_cert is not None and tls_key is not None:
            from cmcstream.server.transport import tls_context

            tls_context(tls_cert, tls_key)  # a bad pair fails here, before anything starts
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    store = KeyStore(config.resolved_db_path)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(loop_name)) as runner:
            runner.run(_serve(config, store, _evm_source(**evm)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            click.echo(f"error: {host}:{port} is already in use (try --port)", err=True)
            sys.exit(1)
        raise
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


async def _serve(
    config: ServerConfig, store: KeyStore, dex: Callable[[], Any] | None = None
) -> None:
    from cmcstream.app import App  # the server's imports are only paid by `serve`

    demo = _demo_key(store)
    started = time.monotonic()
    node = App(config, store) if dex is None else _chain_app(config, store, dex())
    await node.start()
    click.echo(f"cmcstream {__version__} listening on {node.url}")
    scheme = "http" if config.tls_cert is None else "https"
    click.echo(f"  health:   {scheme}://{config.host}:{node.port}/health")
    click.echo(f"  key store: {store.path}")
    if demo is not None:
        click.echo(f"  demo key: {demo.key}  (plan {demo.plan})")
    else:
        click.echo(f"  {store.count()} keys in the store; see `cmcstream keys list`")
    click.echo(
        f"  market: {config.universe_size} assets, seed {config.seed}, speed {config.speed:g}x"
        f" (ready in {time.monotonic() - started:.1f} s)"
    )
    loop = asyncio.get_running_loop()
    click.echo(f"  event loop: {type(loop).__module__.partition('.')[0]}")
    click.echo(f"  on-chain engine: {engine_build()}")
    click.echo("Press Ctrl-C to stop.")
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await node.serve_until(stop)
    click.echo("stopped.")


def _demo_key(store: KeyStore) -> KeyRecord | None:
    """Create the demo key in an empty store; otherwise find it if it is still usable."""
    if store.count() == 0:
        return store.create(plan=DEFAULT_PLAN, name="demo")
    for record in store.list():
        if record.name == "demo" and record.status is KeyStatus.ACTIVE:
            return record
    return None


# -- an EVM chain as the on-chain source ----------------------------------------------------------


def _evm_source(
    source: str, rpc: str | None, platform_id: int, from_block: int | None, confirmations: int
) -> Callable[[], Any] | None:
    if source == "sim":
        return None
    if rpc is None:
        raise click.UsageError("--source evm needs --rpc ws://HOST:PORT")
    try:
        from cmcstream.sources.evm.source import EvmSource
    except ImportError:
        raise click.UsageError(
            "--source evm needs the evm extra: pip install 'cmcstream[evm]'"
        ) from None

    def build() -> Any:
        return EvmSource(rpc, platform_id, from_block=from_block, confirmations=confirmations)

    return build


def _chain_app(config: ServerConfig, store: KeyStore, dex: Any) -> Any:
    from cmcstream.app import App
    from cmcstream.bus.memory import MemoryBus
    from cmcstream.feed import Feed

    bus = MemoryBus()
    return App(config, store, bus=bus, feed=Feed(config, bus, dex=dex))


@main.command()
@click.option("--port", default=8765, show_default=True, help="TCP port (0 picks a free one).")
@_db_option
@click.option("--seed", default=0, show_default=True, help="Seed of the trading loop.")
@click.option("--rate", default=2.0, show_default=True, help="Trading actions per second.")
def devchain(port: int, db: Path | None, seed: int, rate: float) -> None:
    """A local chain to stream from: anvil, Uniswap V2, three ERC-20s and seeded traders.

    Needs the chain tools of the source checkout (`npm ci --prefix chain`) and the
    evm extra. Serves the on-chain channels of platform 1 from that chain.
    """
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    config = ServerConfig(port=port, db_path=db, dex_warm_up=False)
    store = KeyStore(config.resolved_db_path)
    try:
        with chain:
            click.echo(f"anvil on {chain.ws_url} (log {chain.log_path})")
            asyncio.run(_devchain(config, store, chain.ws_url, seed, rate))
    finally:
        store.close()


async def _devchain(
    config: ServerConfig, store: KeyStore, rpc: str, seed: int, rate: float
) -> None:
    from web3 import AsyncWeb3, WebSocketProvider

    from cmcstream.sources.evm.devchain import DevChain
    from cmcstream.sources.evm.source import EvmSource

    async with AsyncWeb3(WebSocketProvider(rpc)) as w3:
        dex = await DevChain.deploy(w3, seed=seed)
        for symbol, token in dex.tokens.items():
            click.echo(f"  token {symbol:<5} {token.address.lower()}")
        for name, pair in dex.pairs.items():
            click.echo(f"  pool  {name:<10} {pair.address.lower()}")

        stopping = asyncio.Event()

        async def trade() -> None:
            # A flag as well as cancellation: a cancel landing as a web3 call
            # completes can be lost, and the loop must still end.
            while not stopping.is_set():
                await asyncio.sleep(dex.rng.expovariate(rate))
                await dex.act()

        trading = asyncio.get_running_loop().create_task(trade(), name="devchain-trading")
        try:
            await _serve(config, store, lambda: EvmSource(rpc, 1, from_block=0))
        finally:
            stopping.set()
            trading.cancel()
            await asyncio.wait([trading], timeout=5)


# -- keys ----------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage API keys and see their usage."""


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
def keys_create(plan: str, status: str, credits: float | None, name: str, db: Path | None) -> None:
    """Create a key and print it (only the key, for scripts)."""
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
def keys_list(db: Path | None) -> None:
    """List every key with this month's usage."""
    store = _open_store(db)
    try:
        month = month_of(time.time_ns() // 1_000_000)
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


def _get(store: KeyStore, key: str) -> KeyRecord:
    record = store.get(key)
    if record is None:
        store.close()
        raise click.ClickException(f"no such key: {key}")
    return record


@keys.command("show")
@click.argument("key")
@_db_option
def keys_show(key: str, db: Path | None) -> None:
    """Show one key and its usage this month."""
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


def _set_status(key: str, db: Path | None, status: KeyStatus) -> None:
    store = _open_store(db)
    try:
        if not store.set_status(key, status):
            raise click.ClickException(f"no such key: {key}")
    finally:
        store.close()
    click.echo(f"{key} {status.value}")


@keys.command("disable")
@click.argument("key")
@_db_option
def keys_disable(key: str, db: Path | None) -> None:
    """Disable a key (connections get 4101; open ones are closed within seconds)."""
    _set_status(key, db, KeyStatus.DISABLED)


@keys.command("enable")
@click.argument("key")
@_db_option
def keys_enable(key: str, db: Path | None) -> None:
    """Make a key active again."""
    _set_status(key, db, KeyStatus.ACTIVE)


@keys.command("delete")
@click.argument("key")
@_db_option
def keys_delete(key: str, db: Path | None) -> None:
    """Delete a key and its usage."""
    store = _open_store(db)
    try:
        if not store.delete(key):
            raise click.ClickException(f"no such key: {key}")
    finally:
        store.close()
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
