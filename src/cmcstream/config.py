"""Server configuration: one frozen value object with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from cmcstream.protocol.billing import BillingModel
from cmcstream.protocol.session import Counting

__all__ = ["DEFAULT_LEASE_TTL_S", "ServerConfig", "WriterPolicy", "default_db_path"]

# How long a dead gateway's connections still count against their keys (the
# cluster's leases; kept here so the CLI needs no Redis client to show it).
DEFAULT_LEASE_TTL_S = 6.0


@dataclass(frozen=True, slots=True)
class WriterPolicy:
    """Slow-consumer limits.

    Attributes:
        soft_limit_bytes: transport buffer size above which a reader is slow.
        hard_limit_bytes: queue + buffer size at which a slow reader is closed.
        slow_timeout_s: how long a reader may stay slow before it is closed.
    """

    soft_limit_bytes: int = 256 * 1024
    hard_limit_bytes: int = 4 * 1024 * 1024
    slow_timeout_s: float = 30.0


def default_db_path() -> Path:
    """Where the key store lives unless told otherwise: the user's data directory."""
    return Path(platformdirs.user_data_dir("cmcstream", appauthor=False)) / "keys.db"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything ``cmcstream serve`` can be told.

    Attributes:
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        db: the key store: a SQLite file or a ``postgresql://`` URL; ``None`` for
            :func:`default_db_path`.
        seed: seed of the simulators; the same seed gives the same stream.
        speed: simulated seconds per wall second (cadence, history and windows follow it).
        start_ms: simulated epoch ms at start; ``None`` for now. With a fixed
            start and seed, the stream is the same on every run.
        universe_size: assets in the simulated market (real top coins, then a seeded tail).
        fast_cadence_ms: push period for ranks up to ``fast_rank_max`` (simulated ms).
        slow_cadence_ms: push period for every other asset (simulated ms).
        fast_rank_max: the last rank on the fast cadence.
        onchain_step_ms: how often the DEX world advances (simulated ms); also
            the resolution of on-chain interval closes.
        metric_period_ms: at most one token/pool/holders metric push per
            identity per this period (simulated ms).
        dex_activity: multiplies the DEX world's trading rates.
        dex_warm_up: play a week of DEX history before the start, so every
            on-chain window is full at once (a few seconds of start-up).
        ping_interval_ms: ``ping_interval_ms`` announced in ``welcome``.
        idle_timeout_s: close with 1001 after this long with neither a client
            frame nor a push (wall seconds).
        max_frame_bytes: requests longer than this get 2203.
        transport_max_bytes: frames longer than this are refused by the
            WebSocket layer with close 1009 before they are read whole.
        counting: what ``sub_count`` counts.
        billing: the credit model; ``credit_rate`` overrides its rate.
        writer: slow-consumer limits.
        close_timeout_s: how long a closing handshake may take before the TCP
            connection is dropped.
        shutdown_timeout_s: how long a graceful shutdown waits for connections.
        tune_gc: after start-up, move the long-lived heap (market history, the
            DEX world) out of the collector's sight, collect the young
            generation less often and the middle one on a clock
            (:mod:`cmcstream.heap`). For a server process; tests leave it off.
        backlog: the listening socket's accept queue. Clients that reconnect
            together after a restart arrive together; a short queue drops
            their SYNs and each dropped one waits a second to retry.
        usage_flush_s: how often usage is written to the key store.
        key_recheck_s: how often open connections' keys are re-read, so a key
            disabled or deleted while connected is closed.
        open_timeout_s: how long a client may take to complete its opening
            handshake.
        tls_cert: PEM certificate (with its chain) to serve ``wss://``; needs ``tls_key``.
        tls_key: the certificate's private key.
        reuse_port: listen with ``SO_REUSEPORT``, so several gateway processes
            on one machine share the port and the kernel spreads connections
            across them.
        metrics: serve ``GET /metrics`` and time a sample of pushes for it.
        admin_port: serve the admin HTTP API (keys, usage) on this port; ``None``: no
            admin API. 0 picks a free one.
        admin_host: the admin API's interface.
        admin_token: the bearer token the admin API requires (needed with ``admin_port``).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db: str | None = None
    seed: int = 0
    speed: float = 1.0
    start_ms: int | None = None
    universe_size: int = 5000
    fast_cadence_ms: int = 5000
    slow_cadence_ms: int = 15000
    fast_rank_max: int = 500
    onchain_step_ms: int = 1000
    metric_period_ms: int = 1000
    dex_activity: float = 1.0
    dex_warm_up: bool = True
    ping_interval_ms: int = 10_000
    idle_timeout_s: float = 60.0
    max_frame_bytes: int = 64 * 1024
    transport_max_bytes: int = 1024 * 1024
    counting: Counting = Counting.PER_ITEM
    billing: BillingModel = BillingModel.PER_SUBSCRIPTION
    credit_rate: float | None = None
    writer: WriterPolicy = field(default_factory=WriterPolicy)
    close_timeout_s: float = 2.0
    shutdown_timeout_s: float = 5.0
    backlog: int = 4096
    tune_gc: bool = False
    usage_flush_s: float = 1.0
    key_recheck_s: float = 5.0
    open_timeout_s: float = 10.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    reuse_port: bool = False
    metrics: bool = True
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    admin_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.admin_port is not None and not self.admin_token:
            raise ValueError("the admin API needs a token: --admin-token or CMCSTREAM_ADMIN_TOKEN")
        if self.slow_cadence_ms % self.fast_cadence_ms:
            raise ValueError("slow_cadence_ms must be a multiple of fast_cadence_ms")
        if self.transport_max_bytes < self.max_frame_bytes:
            raise ValueError("transport_max_bytes must be at least max_frame_bytes")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key")

    @property
    def store_location(self) -> str:
        """Where the key store is: ``db``, or the default SQLite file."""
        return self.db if self.db is not None else str(default_db_path())
