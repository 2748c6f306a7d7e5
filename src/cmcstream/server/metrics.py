"""``GET /metrics``: the gateway's numbers in the Prometheus text format.

Nothing here runs per push. The gateway already counts what it does in plain
integers (pushes queued by the hub, pushes and bytes written by each outbox,
slow readers closed); :class:`GatewayCollector` reads them when Prometheus
scrapes, so the hot path pays no ``Counter.inc()`` and no lock. The one
measurement taken on the way is the push latency, and only of a sample of
pushes (:class:`PushLatency`).

Each process serves its own numbers: with ``serve --workers N`` a scrape of
the shared port reaches whichever gateway process accepts it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cmcstream.clock import Clock
from cmcstream.protocol.billing import MILLI

__all__ = ["GatewayCollector", "PushLatency", "Snapshot", "metrics_endpoint"]


# One fan-out frame in this many is timed: a frame goes to every subscriber of
# its topic in one pass, so its latency stands for all of theirs.
SAMPLE_EVERY: Final = 16

# Seconds; the envelope's ``ts`` has millisecond resolution, so nothing finer.
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PushLatency:
    """Time from a push's ``ts`` (stamped by the feed at publish, wall clock) to its write.

    The hub hands over a sample of the frames it fans out (:meth:`mark`); after
    the flush pass that wrote them to every reader keeping up, the scheduler
    calls :meth:`settle`, which observes their age.
    """

    def __init__(self, wall: Clock) -> None:
        self._wall = wall
        self._marked: list[int] = []
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum_s = 0.0

    def mark(self, payload: bytes) -> None:
        # A push ends with ``,"ts":<epoch ms>}`` (codec.encode_data).
        start = payload.rfind(b":") + 1
        try:
            self._marked.append(int(payload[start:-1]))
        except ValueError:
            return

    def settle(self) -> None:
        if not self._marked:
            return
        now_ms = self._wall.now_ms()
        for ts in self._marked:
            self.observe(max(now_ms - ts, 0) / 1000)
        self._marked.clear()

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum_s += seconds


@dataclass(slots=True)
class Snapshot:
    """What a gateway has counted so far, read at scrape time."""

    connections_by_plan: Mapping[str, int] = field(default_factory=dict)
    subscriptions_by_channel: Mapping[str, int] = field(default_factory=dict)
    pushes_fanned_out: int = 0
    pushes_sent: int = 0
    bytes_sent: int = 0
    pushes_collapsed: int = 0
    slow_readers: int = 0
    slow_closed: int = 0
    errors_by_code: Mapping[str, int] = field(default_factory=dict)
    closes_by_code: Mapping[int, int] = field(default_factory=dict)
    credits_charged_milli: int = 0
    feed_lag_s: Mapping[str, float] = field(default_factory=dict)


class GatewayCollector(Collector):
    """The ``cmcstream_…`` metrics of one gateway, built from a :class:`Snapshot` per scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot], latency: PushLatency) -> None:
        self._snapshot = snapshot
        self._latency = latency

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield _labelled(
            GaugeMetricFamily(
                "cmcstream_connections",
                "Open client connections, by the key's plan.",
                labels=["plan"],
            ),
            s.connections_by_plan,
        )
        yield _labelled(
            GaugeMetricFamily(
                "cmcstream_subscriptions",
                "Subscribed topics summed over connections, by channel.",
                labels=["channel"],
            ),
            s.subscriptions_by_channel,
        )
        for name, doc, value in (
            (
                "pushes_fanned_out",
                "Pushes queued for subscribers by the fan-out.",
                s.pushes_fanned_out,
            ),
            ("pushes_sent", "Pushes written to clients.", s.pushes_sent),
            ("bytes_sent", "Bytes of WebSocket frames written to clients.", s.bytes_sent),
            (
                "pushes_collapsed",
                "Latest-value pushes a slow reader skipped for a newer one of the same topic.",
                s.pushes_collapsed,
            ),
            ("slow_closed", "Connections closed with 1011 for reading too slowly.", s.slow_closed),
        ):
            yield CounterMetricFamily(f"cmcstream_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "cmcstream_slow_readers", "Connections behind right now.", value=s.slow_readers
        )
        yield _labelled(
            CounterMetricFamily(
                "cmcstream_errors", "Error frames sent, by error_code.", labels=["code"]
            ),
            s.errors_by_code,
        )
        yield _labelled(
            CounterMetricFamily(
                "cmcstream_closes", "Connections closed, by close code.", labels=["code"]
            ),
            {str(code): n for code, n in s.closes_by_code.items()},
        )
        yield CounterMetricFamily(
            "cmcstream_credits_charged",
            "Credits charged to keys by this process (counted at each usage flush).",
            value=s.credits_charged_milli / MILLI,
        )
        yield _labelled(
            GaugeMetricFamily(
                "cmcstream_feed_lag_seconds",
                "How far each feed loop ran behind its due time at its last run.",
                labels=["loop"],
            ),
            s.feed_lag_s,
        )
        latency = self._latency
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), latency.counts, strict=True):
            cumulative += count
            buckets.append((_bound(bound), cumulative))
        yield HistogramMetricFamily(
            "cmcstream_push_latency_seconds",
            f"From a push's ts to its write, one fan-out frame in {SAMPLE_EVERY}.",
            buckets=buckets,
            sum_value=latency.sum_s,
        )


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]
) -> Metric:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def metrics_endpoint(collector: GatewayCollector) -> Callable[[], bytes]:
    """The body of ``GET /metrics``: ``collector``'s metrics and the process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)

    def render() -> bytes:
        return generate_latest(registry)

    return render
