"""``GET /metrics``: scraped from a running server and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from cmcstream.clock import ManualClock
from cmcstream.server.metrics import LATENCY_BUCKETS, PushLatency
from cmcstream.testing.server import RunningNode, running_server
from tests.server.conftest import closed_with, dial, recv_json, request, welcomed

MARKET = "market@crypto_latest_price"


def scrape(port: int) -> tuple[str, dict[str, list[Sample]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    families = {family.name: family.samples for family in text_string_to_metric_families(text)}
    return content_type, families


def value(samples: list[Sample], name: str, **labels: str) -> float:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise AssertionError(f"no sample {name} {labels}")


async def test_a_scrape_shows_connections_pushes_errors_and_closes(node: RunningNode) -> None:
    other = node.store.create(plan="enterprise").key
    async with dial(node.url, node.demo_key) as ws, dial(node.url, other) as ws2:
        await welcomed(ws)
        await welcomed(ws2)
        reply = await request(
            ws, {"id": 1, "method": "subscribe", "channel": MARKET, "params": {"crypto_ids": [1]}}
        )
        assert reply["type"] == "ack"
        while (await recv_json(ws))["type"] != "data":
            pass
        bad = await request(ws, {"id": 2, "method": "nonsense"})
        assert bad["type"] == "error"
        error_code = bad["status"]["error_code"]
        ctype, families = await asyncio.to_thread(scrape, node.port)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert (
            value(families["cmcstream_connections"], "cmcstream_connections", plan="startup") == 1
        )
        assert value(families["cmcstream_connections"], "cmcstream_connections", plan="enterprise")
        subs = families["cmcstream_subscriptions"]
        assert value(subs, "cmcstream_subscriptions", channel=MARKET) == 1
        assert value(families["cmcstream_pushes_sent"], "cmcstream_pushes_sent_total") >= 1
        assert value(families["cmcstream_bytes_sent"], "cmcstream_bytes_sent_total") > 100
        errors = families["cmcstream_errors"]
        assert value(errors, "cmcstream_errors_total", code=error_code) == 1
        assert "market tick" in {s.labels["loop"] for s in families["cmcstream_feed_lag_seconds"]}
        assert "process_resident_memory_bytes" in families or "process_cpu_seconds" in families
    async with dial(node.url, "not-a-key") as refused:
        assert (await closed_with(refused))[0] == 4100
    await asyncio.sleep(0.05)
    _, families = await asyncio.to_thread(scrape, node.port)
    closes = families["cmcstream_closes"]
    assert value(closes, "cmcstream_closes_total", code="4100") == 1
    assert value(closes, "cmcstream_closes_total", code="1000") == 2
    assert value(families["cmcstream_connections"], "cmcstream_connections", plan="startup") == 0
    assert value(families["cmcstream_pushes_sent"], "cmcstream_pushes_sent_total") >= 1


def test_push_latency_is_measured_from_the_envelope_ts() -> None:
    wall = ManualClock(1_000_000)
    latency = PushLatency(wall)
    latency.mark(b'{"type":"data","channel":"c","params":{},"data":{},"ts":999990}')
    latency.mark(b'{"type":"data","channel":"c","params":{},"data":{},"ts":998000}')
    latency.mark(b"not a push")
    latency.settle()
    latency.settle()  # nothing marked since: nothing observed twice
    assert sum(latency.counts) == 2
    assert latency.counts[LATENCY_BUCKETS.index(0.01)] == 1  # 10 ms
    assert latency.counts[LATENCY_BUCKETS.index(2.5)] == 1  # 2 s
    assert abs(latency.sum_s - 2.01) < 1e-9


async def test_fanned_out_frames_are_sampled_for_latency(node: RunningNode) -> None:
    node.hub.sample_every = 1
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        await request(
            ws, {"id": 1, "method": "subscribe", "channel": MARKET, "params": {"crypto_ids": [1]}}
        )
        while (await recv_json(ws))["type"] != "data":
            pass
    _, families = await asyncio.to_thread(scrape, node.port)
    histogram = families["cmcstream_push_latency_seconds"]
    assert value(histogram, "cmcstream_push_latency_seconds_count") >= 1
    assert value(histogram, "cmcstream_push_latency_seconds_bucket", le="+Inf") >= 1


async def test_without_metrics_the_path_is_404_and_nothing_is_sampled() -> None:
    async with running_server(speed=100, metrics=False) as node:
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(scrape, node.port)
        assert info.value.code == 404
        info.value.close()
        assert node.hub.on_sample is None
        assert node.scheduler.after_fanout is None
