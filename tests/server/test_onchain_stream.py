"""All nine on-chain channels over real sockets, checked against the spec and the invariants."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.conftest import dial, recv_json, request, welcomed

INTERVAL_MS = {"1s": 1000, "5s": 5000}


def documented_fields(
    channels_json: Any, channel: str, tp: str | None = None
) -> tuple[set[str], set[str]]:
    """(all documented field names, required ones) of a channel's payload or ``tp`` variant."""
    spec = channels_json["channels"][channel]
    fields = list(spec["payload"])
    if tp is not None:
        fields += spec["variants"][tp]["fields"]
    return {f["name"] for f in fields}, {f["name"] for f in fields if f.get("required")}


async def collect(
    node: RunningNode, requests: list[dict[str, Any]], seconds: float
) -> list[dict[str, Any]]:
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
        for i, req in enumerate(requests):
            ack = await request(ws, {"id": i, "method": "subscribe", **req})
            assert ack["type"] == "ack", ack
        frames = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frame = await recv_json(ws, wait=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            assert frame["type"] == "data", frame
            frames.append(frame)
        return frames


async def test_every_onchain_channel_streams_consistent_data(channels_json: Any) -> None:
    async with running_server(speed=50, dex_activity=3.0) as node:
        token = node.world.busiest_token(14)
        pool = next(
            p for p in node.world.pools if p.chain == 14 and token.address in (p.token0, p.token1)
        )
        wallet = next(w for w in node.world.wallets if w.chain == 14 and "bot" in w.tags)
        base = {"platform_id": 14, "address": [token.address]}
        requests = [
            {"channel": "onchain@transaction", "params": base},
            {"channel": "onchain@token_agg_event", "params": base},
            {
                "channel": "onchain@liquidity_event",
                "params": {
                    **base,
                    "address": [t.address for t in node.world.tokens if t.chain == 14],
                },
            },
            {"channel": "onchain@kline", "params": {**base, "interval": "1s"}},
            {"channel": "onchain@kline", "params": {**base, "interval": "5s"}},
            {"channel": "onchain@unique_trader", "params": {**base, "interval": "5s"}},
            {"channel": "onchain@token_metric", "params": base},
            {
                "channel": "onchain@pool_metric",
                "params": {"platform_id": 14, "pool_address": pool.address},
            },
            {"channel": "onchain@holders_metrics", "params": base},
            {
                "channel": "onchain@holder_wallet_update",
                "params": {"platform_id": 14, "wallet_address": wallet.address},
            },
        ]
        frames = await collect(node, requests, seconds=6.0)

    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for frame in frames:
        assert list(frame) == ["type", "channel", "params", "data", "ts"]
        assert all(not isinstance(v, list) for v in frame["params"].values())  # scalar echo
        assert frame["params"]["platform_id"] == 14
        by_channel[frame["channel"]].append(frame)
    missing = {r["channel"] for r in requests} - set(by_channel)
    assert not missing, f"no pushes on {missing}"

    # Field sets per channel and per tp variant.
    for channel, pushes in by_channel.items():
        for push in pushes:
            data = push["data"]
            tp = (
                data.get("tp")
                if channel in ("onchain@holders_metrics", "onchain@holder_wallet_update")
                else None
            )
            names, required = documented_fields(channels_json, channel, tp)
            if channel == "onchain@liquidity_event":
                names |= {"pa"}  # §9.10: the pool address, added
            assert required <= set(data), (channel, data)
            assert set(data) <= names, (channel, set(data) - names)
            if channel in ("onchain@transaction", "onchain@liquidity_event"):
                assert "lgid" in data
                assert "iix" not in data
    variants = {p["data"]["tp"] for p in by_channel["onchain@holders_metrics"]}
    assert variants == {"tag_distribution", "holder_count", "top_share", "tag_pnl", "tag_balance"}

    # Transactions: each swap of the token, with its params echo.
    txs = [p["data"] for p in by_channel["onchain@transaction"]]
    for push in by_channel["onchain@transaction"]:
        assert push["params"] == {"platform_id": 14, "address": token.address}
        assert token.address in (push["data"]["t0a"], push["data"]["t1a"])

    def price_in(tx: dict[str, Any]) -> float:
        return float(tx["t0pu"] if tx["t0a"] == token.address else tx["t1pu"])

    included = [tx for tx in txs if not tx["ex"]]
    first_ts = txs[0]["ts"] if txs else 0

    # Klines: OHLC order, spacing, and o/c/vu from the included swaps of complete intervals.
    for interval in ("1s", "5s"):
        length = INTERVAL_MS[interval]
        candles = [
            p["data"] for p in by_channel["onchain@kline"] if p["params"]["interval"] == interval
        ]
        assert candles
        for a, b in itertools.pairwise(candles):
            assert b["ot"] - a["ot"] == length
        checked = 0
        for k in candles:
            assert k["l"] <= min(k["o"], k["c"]) <= max(k["o"], k["c"]) <= k["h"]
            assert k["ot"] % length == 0
            if k["ot"] <= first_ts:
                continue  # the interval began before we saw its swaps
            inside = [tx for tx in included if k["ot"] <= tx["ts"] < k["ot"] + length]
            if inside:
                assert k["o"] == price_in(inside[0])
                assert k["c"] == price_in(inside[-1])
                assert abs(k["vu"] - sum(tx["vu"] for tx in inside)) <= 1e-6 * max(k["vu"], 1)
                checked += 1
            else:
                assert k["vu"] == 0
        assert checked > 0

    # Unique traders per finished interval.
    for push in by_channel["onchain@unique_trader"]:
        ut = push["data"]
        if ut["ot"] > first_ts:
            inside = {tx["ma"] for tx in included if ut["ot"] <= tx["ts"] < ut["ot"] + 5000}
            assert ut["ut"] == len(inside)

    # Token metric windows.
    for push in by_channel["onchain@token_metric"]:
        for w in push["data"]["sts"]:
            assert w["txs"] == w["bc"] + w["sc"]
            assert abs(w["vu"] - (w["bvu"] + w["svu"])) <= 1e-6 * max(w["vu"], 1)
            assert w["ut"] <= w["but"] + w["sut"]
            assert w["l"] is None or w["l"] <= w["h"]

    # Pool metric windows are nested.
    for push in by_channel["onchain@pool_metric"]:
        data = push["data"]
        wins = [data[k] for k in ("5m", "1h", "4h", "24h", "7d")]
        for small, large in itertools.pairwise(wins):
            for field in small:
                assert small[field] <= large[field] + 1e-9 * max(abs(large[field]), 1)

    # Holder shares ordered.
    for push in by_channel["onchain@holders_metrics"]:
        data = push["data"]
        if data["tp"] == "top_share":
            assert data["t10p"] <= data["t50p"] <= data["t100p"] <= 100
        if data["tp"] == "holder_count":
            assert data["hc"] > 0


async def test_unknown_addresses_are_acked_and_get_nothing() -> None:
    async with running_server(speed=50) as node:
        unknown = "0x" + "ab" * 20
        frames = await collect(
            node,
            [{"channel": "onchain@transaction", "params": {"platform_id": 14, "address": unknown}}],
            seconds=1.0,
        )
    assert frames == []
    await asyncio.sleep(0)
