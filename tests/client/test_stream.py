"""The client against a real cmcstream server (and two tiny misbehaving ones) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

import cmcstream
from cmcstream import exceptions as exc
from cmcstream.client import Backoff, ConnectionState, StateChange, Stream
from cmcstream.client.payloads import (
    CryptoLatestPrice,
    Kline,
    LiquidityEvent,
    PoolMetric,
    TokenAggEvent,
    TokenMetric,
    Transaction,
    UniqueTrader,
)
from cmcstream.protocol.codes import CloseCode
from cmcstream.server.keystore import KeyStatus, KeyStore
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.conftest import dial, welcomed

FAST = Backoff(base_s=0.05, cap_s=0.2, limited_base_s=0.3, limited_cap_s=0.6, reset_after_s=60)


async def pushes_until(
    stream: Stream, done: Callable[[list[cmcstream.Push]], bool], seconds: float = 15.0
) -> list[cmcstream.Push]:
    got: list[cmcstream.Push] = []
    deadline = time.monotonic() + seconds
    while not done(got):
        left = deadline - time.monotonic()
        assert left > 0, f"gave up after {len(got)} pushes: {Counter(p.channel for p in got)}"
        try:
            got.append(await stream.recv(timeout=left))
        except TimeoutError:
            continue
    return got


def connect(node: RunningNode, **options: Any) -> Any:
    return cmcstream.connect(node.demo_key, node.url, backoff=FAST, **options)


# -- every channel ------------------------------------------------------------------------------


async def test_every_channel_arrives_as_its_typed_payload() -> None:
    async with running_server(speed=50, dex_activity=3.0) as node:
        token = node.world.busiest_token(14)
        pool = next(
            p for p in node.world.pools if p.chain == 14 and token.address in (p.token0, p.token1)
        )
        wallet = next(w for w in node.world.wallets if w.chain == 14 and "bot" in w.tags)
        base = {"platform_id": 14, "address": token.address}
        async with connect(node) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
            for channel in (
                "onchain@token_agg_event",
                "onchain@transaction",
                "onchain@liquidity_event",
                "onchain@token_metric",
                "onchain@holders_metrics",
            ):
                ack = await stream.subscribe(channel, base)
                assert ack.channel == channel
            await stream.subscribe("onchain@kline", base, interval="1s")
            await stream.subscribe("onchain@unique_trader", base, interval="1s")
            await stream.subscribe("onchain@pool_metric", platform_id=14, pool_address=pool.address)
            ack = await stream.subscribe(
                "onchain@holder_wallet_update", platform_id=14, wallet_address=wallet.address
            )
            assert ack.sub_count == 11
            assert ack.sub_limit == 100
            got = await pushes_until(stream, lambda ps: len({p.channel for p in ps}) == 10, 30)
    types = {
        "market@crypto_latest_price": CryptoLatestPrice,
        "onchain@token_agg_event": TokenAggEvent,
        "onchain@transaction": Transaction,
        "onchain@liquidity_event": LiquidityEvent,
        "onchain@kline": Kline,
        "onchain@token_metric": TokenMetric,
        "onchain@pool_metric": PoolMetric,
        "onchain@unique_trader": UniqueTrader,
    }
    for push in got:
        assert not isinstance(push.data, dict), push
        if push.channel in types:
            assert isinstance(push.data, types[push.channel])
        else:
            assert push.data.tp in {
                "tag_distribution",
                "holder_count",
                "top_share",
                "tag_pnl",
                "tag_balance",
                "token_balance",
                "native_balance",
                "pnl_stats",
                "last_active",
                "position_time",
            }
        assert push.ts > 0
        assert push.received > 0
    btc = next(p.data for p in got if p.params == {"crypto_ids": 1})
    assert 10_000 < btc.p < 1_000_000


async def test_decimal_numbers_and_raw_payloads() -> None:
    async with running_server(speed=100) as node:
        async with connect(node, numbers="decimal") as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=1)
            push = await stream.recv(timeout=10)
            assert type(push.data.p).__name__ == "Decimal"
        async with connect(node, raw=True) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=1)
            push = await stream.recv(timeout=10)
            assert isinstance(push.data, dict)
            assert push.data["cid"] == 1


async def test_request_errors_are_typed_and_leave_the_stream_usable() -> None:
    async with running_server(speed=100) as node, connect(node) as stream:
        with pytest.raises(exc.ChannelError) as unknown:
            await stream.subscribe("market@kline", crypto_ids=[1])
        assert unknown.value.error_code == 2301
        assert unknown.value.status["error_message"] == "Channel does not exist."
        with pytest.raises(exc.InvalidParams) as bad:
            await stream.subscribe("onchain@kline", platform_id=14, address="0x1", interval="1m")
        assert bad.value.status["category"] == "PROTOCOL"
        with pytest.raises(exc.InvalidParams):
            await stream.subscribe("market@crypto_latest_price")  # 2401
        assert stream.subscriptions == []
        ack = await stream.subscribe("market@crypto_latest_price", {"crypto_ids": [1, 1027]})
        assert (ack.sub_count, ack.duplicate) == (2, False)
        again = await stream.subscribe("market@crypto_latest_price", crypto_ids=1027)
        assert (again.sub_count, again.duplicate) == (2, True)
        assert (await stream.unsubscribe("market@crypto_latest_price", crypto_ids=1)).sub_count == 1
        assert stream.subscriptions == [
            {"channel": "market@crypto_latest_price", "crypto_ids": 1027}
        ]
        assert (await stream.unsubscribe("market@crypto_latest_price")).sub_count == 0
        await stream.subscribe("market@crypto_latest_price", crypto_ids=[5, 6])
        cleared = await stream.unsubscribe_all()
        assert (cleared.channel, cleared.sub_count) == (None, 0)
        assert stream.subscriptions == []
        assert stream.state is ConnectionState.OPEN


# -- reconnects ---------------------------------------------------------------------------------


async def test_server_restart_on_the_same_port_restores_subscriptions_and_reports_the_outage() -> (
    None
):
    store = KeyStore(":memory:")
    changes: list[StateChange] = []
    try:
        async with running_server(store=store, speed=100) as first:
            port = first.port
            stream = await cmcstream.connect(
                first.demo_key, first.url, backoff=FAST, on_state=changes.append
            )
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
            await stream.subscribe(
                "onchain@token_metric",
                platform_id=14,
                address=first.world.busiest_token(14).address,
            )
            await stream.recv(timeout=10)
        stopped = time.time()
        await asyncio.sleep(0.3)  # the client retries against a closed port meanwhile
        async with running_server(store=store, speed=100, port=port) as second:
            got = await pushes_until(
                stream, lambda ps: any(p.received > stopped + 0.3 for p in ps), 15
            )
            assert got
            assert sum(len(group) for group in second.connections.values()) == 1
            assert second.hub.topic_count == 3
            assert stream.subscriptions[0] == {
                "channel": "market@crypto_latest_price",
                "crypto_ids": 1,
            }
            await stream.close()
    finally:
        store.close()
    states = [c.state for c in changes]
    assert states[:2] == [ConnectionState.OPEN, ConnectionState.RECONNECTING]
    assert ConnectionState.OPEN in states[2:]
    (outage,) = stream.outages
    assert outage.start <= stopped <= outage.end
    assert outage.seconds >= 0.3
    assert "1001" in outage.reason or "1012" in outage.reason
    reopened = next(c for c in changes[2:] if c.state is ConnectionState.OPEN)
    assert reopened.outage == outage
    assert stream.stats()["reconnects"] == 1


async def close_every_connection(
    node: RunningNode, how: Callable[[ServerConnection], None]
) -> None:
    for group in list(node.connections.values()):
        for conn in list(group):
            how(conn.ws)


def reset(ws: ServerConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()  # with SO_LINGER 0 the kernel answers with a TCP reset


@pytest.mark.parametrize("cut", ["1011", "reset"])
async def test_a_connection_cut_mid_stream_recovers(cut: str) -> None:
    back = asyncio.Event()

    def watch(change: StateChange) -> None:
        if change.outage is not None:
            back.set()

    async with running_server(speed=100) as node:
        async with connect(node, on_state=watch) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=list(range(1, 21)))
            await pushes_until(stream, lambda ps: len(ps) >= 20)
            cut_at = time.time()
            if cut == "1011":
                for group in list(node.connections.values()):
                    for conn in list(group):
                        conn.close(CloseCode.SEND_FAILURE)
            else:
                await close_every_connection(node, reset)
            await asyncio.wait_for(back.wait(), 10)
            (outage,) = stream.outages
            assert ("1011" in outage.reason) if cut == "1011" else ("1006" in outage.reason)
            assert outage.end > cut_at
            known = {cid for cid in range(1, 21) if node.engine.knows(cid)}
            after = await pushes_until(
                stream,
                lambda ps: {p.params["crypto_ids"] for p in ps if p.received > outage.end} >= known,
            )
            assert after
            assert node.hub.topic_count == 20


# -- fatal closes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "plan", "error"),
    [
        (None, "startup", exc.InvalidKey),
        (KeyStatus.DISABLED, "startup", exc.KeyDisabled),
        (KeyStatus.ACTIVE, "basic", exc.PlanNotSupported),
        (KeyStatus.INACTIVE, "startup", exc.KeyNotActivated),
        (KeyStatus.EXPIRED, "startup", exc.PlanExpired),
    ],
)
async def test_refused_keys_raise_at_once_without_retrying(
    status: KeyStatus | None, plan: str, error: type[exc.AuthError]
) -> None:
    async with running_server() as node:
        key = "no-such-key" if status is None else node.store.create(plan=plan, status=status).key
        changes: list[StateChange] = []
        started = time.monotonic()
        with pytest.raises(error):
            await cmcstream.connect(key, node.url, backoff=FAST, on_state=changes.append)
        assert time.monotonic() - started < 2
        assert [c.state for c in changes] == [ConnectionState.FAILED]


async def test_a_key_disabled_mid_stream_ends_iteration_with_the_error() -> None:
    async with running_server(speed=100, key_recheck_s=0.1) as node:
        async with connect(node) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1])
            await stream.recv(timeout=10)
            node.store.set_status(node.demo_key, KeyStatus.DISABLED)
            with pytest.raises(exc.KeyDisabled):
                async for _ in stream:
                    pass
            assert stream.state is ConnectionState.FAILED
            with pytest.raises(exc.KeyDisabled):
                await stream.subscribe("market@crypto_latest_price", crypto_ids=[2])


async def test_the_eleventh_connection_is_limited() -> None:
    async with running_server() as node:
        held = [dial(node.url, node.demo_key) for _ in range(10)]
        sockets = [await h.__aenter__() for h in held]
        try:
            for ws in sockets:
                await welcomed(ws)
            with pytest.raises(exc.ConnectionLimited):
                await cmcstream.connect(node.demo_key, node.url, backoff=FAST)
        finally:
            for ws in sockets:
                await ws.close()


class ScriptedServer:
    """A fake server whose n-th connection follows the n-th script step."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.accepted = 0
        self.subscribed: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def __call__(self, ws: ServerConnection) -> None:
        step = self.steps[min(self.accepted, len(self.steps) - 1)]
        self.accepted += 1
        if step == "limited":
            await ws.close(4004, "Connection limit")
            return
        await ws.send(json.dumps({"type": "welcome", "ping_interval_ms": 10_000, "ts": 0}))
        async for text in ws:
            request = json.loads(text)
            if request["method"] != "subscribe":
                continue
            self.subscribed.append(request["params"])
            if step == "refuse":
                status = {
                    "timestamp": "2026-01-01T00:00:00.000Z",
                    "error_code": "2402",
                    "category": "PROTOCOL",
                    "error_message": "Invalid param for channel.",
                }
                await ws.send(json.dumps({"type": "error", "id": request["id"], "status": status}))
                self.done.set()
                continue
            count = len(request["params"]["crypto_ids"])
            ack = {
                "type": "ack",
                "id": request["id"],
                "code": 0,
                "msg": "ok",
                "channel": request["channel"],
                "sub_count": count,
                "sub_limit": 100,
            }
            await ws.send(json.dumps(ack))
            if step == "cut":
                await ws.close(1011, "Send failure")
            elif step == "serve":
                self.done.set()


async def test_4004_on_reconnect_is_retried_and_reported() -> None:
    script = ScriptedServer(["cut", "limited", "limited", "serve"])
    changes: list[StateChange] = []
    async with fake_server(script) as url:
        async with cmcstream.connect("k", url, backoff=FAST, on_state=changes.append) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 2])
            await asyncio.wait_for(script.done.wait(), 10)
            assert stream.subscriptions == [
                {"channel": "market@crypto_latest_price", "crypto_ids": 1},
                {"channel": "market@crypto_latest_price", "crypto_ids": 2},
            ]
    assert script.accepted == 4
    assert script.subscribed[-1] == {"crypto_ids": [1, 2]}
    reasons = [c.reason for c in changes if c.state is ConnectionState.RECONNECTING]
    assert reasons[0].startswith("closed 1011")
    assert [r.split(" (")[0] for r in reasons[1:]] == ["closed 4004", "closed 4004"]
    (outage,) = stream.outages
    assert outage.reason.startswith("closed 1011")


async def test_a_subscription_refused_on_restore_is_reported_not_fatal() -> None:
    script = ScriptedServer(["cut", "refuse"])
    async with fake_server(script) as url:
        async with cmcstream.connect("k", url, backoff=FAST) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[7])
            await asyncio.wait_for(script.done.wait(), 10)
            await asyncio.sleep(0.05)
            assert stream.state is ConnectionState.OPEN
            assert stream.subscriptions == []
            ((item, error),) = stream.errors
            assert item.params() == {"crypto_ids": 7}
            assert isinstance(error, exc.InvalidParams)


# -- limits -------------------------------------------------------------------------------------


async def test_150_subscriptions_spread_over_two_connections() -> None:
    async with running_server(speed=100) as node, connect(node) as stream:
        ack = await stream.subscribe("market@crypto_latest_price", crypto_ids=list(range(1, 151)))
        assert (ack.sub_count, ack.connections) == (150, 2)
        assert stream.connections == 2
        assert len(node.connections[node.demo_key]) == 2
        assert node.hub.topic_count == 150
        known = {cid for cid in range(1, 151) if node.engine.knows(cid)}
        got = await pushes_until(
            stream, lambda ps: {p.params["crypto_ids"] for p in ps} >= known, 20
        )
        assert got
        with pytest.raises(exc.CapacityError):
            await stream.subscribe("market@crypto_latest_price", crypto_ids=list(range(151, 1200)))
        assert node.hub.topic_count == 150  # nothing was sent


async def test_capacity_is_checked_before_anything_is_sent() -> None:
    async with running_server() as node, connect(node, max_connections=1) as stream:
        with pytest.raises(exc.CapacityError, match="101 new"):
            await stream.subscribe("market@crypto_latest_price", crypto_ids=list(range(1, 102)))
        assert node.hub.topic_count == 0
        assert stream.connections == 1


# -- duplicates ---------------------------------------------------------------------------------


async def test_a_swap_seen_through_both_of_its_tokens_is_delivered_once() -> None:
    frames: list[dict[str, Any]] = []

    def record(link: int, text: str, received: float) -> None:
        frame = json.loads(text)
        if frame["type"] == "data" and frame["channel"] == "onchain@transaction":
            frames.append(frame["data"])

    async with running_server(speed=50, dex_activity=3.0) as node:
        token = node.world.busiest_token(14)
        pool = next(
            p for p in node.world.pools if p.chain == 14 and token.address in (p.token0, p.token1)
        )
        async with connect(node, on_frame=record) as stream:
            await stream.subscribe(
                "onchain@transaction", platform_id=14, address=[pool.token0, pool.token1]
            )
            got = await pushes_until(
                stream, lambda ps: stream.stats()["duplicates"] >= 3 and len(ps) >= 10
            )
            await asyncio.sleep(0.2)
            while (more := await _recv_nowait(stream)) is not None:
                got.append(more)
    wire = Counter((d["tx"], d["lgid"]) for d in frames)
    assert max(wire.values()) == 2  # the server sent some swaps twice
    delivered = Counter((p.data.tx, p.data.lgid) for p in got)
    assert max(delivered.values()) == 1
    assert set(delivered) <= set(wire)


async def _recv_nowait(stream: Stream) -> cmcstream.Push | None:
    try:
        return await stream.recv(timeout=0.01)
    except TimeoutError:
        return None


# -- silence --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_server(handler: Callable[[ServerConnection], Any]) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1"


async def test_the_silence_watchdog_reconnects_a_server_that_stopped_sending() -> None:
    accepted = 0
    again = asyncio.Event()

    async def welcome_then_nothing(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        if accepted == 2:
            again.set()
        await ws.send(json.dumps({"type": "welcome", "ping_interval_ms": 100, "ts": 0}))
        await ws.wait_closed()  # answers nothing and never closes by itself

    changes: list[StateChange] = []
    async with fake_server(welcome_then_nothing) as url:
        started = time.monotonic()
        async with cmcstream.connect(
            "k", url, backoff=FAST, silence_factor=3, on_state=changes.append
        ):
            await asyncio.wait_for(again.wait(), 5)
        assert accepted >= 2
        assert time.monotonic() - started < 3
    dropped = next(c for c in changes if c.state is ConnectionState.RECONNECTING)
    assert "silence" in dropped.reason


async def test_a_reader_waiting_on_a_full_buffer_is_not_silence() -> None:
    async with running_server(speed=200) as node:
        async with connect(node, buffer_size=5, ping_interval=0.05, silence_factor=2) as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=list(range(1, 30)))
            await asyncio.sleep(0.5)  # the application is busy; the buffer fills
            assert stream.stats()["buffered"] == 5
            assert stream.stats()["buffer_high_water"] == 5
            assert stream.state is ConnectionState.OPEN
            assert not stream.outages
            assert stream.stats()["dropped"] == {}


async def test_latest_overflow_policy_counts_what_it_replaces() -> None:
    async with running_server(speed=200) as node:
        async with connect(node, buffer_size=5, overflow="latest") as stream:
            await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 2])
            await asyncio.sleep(0.6)  # many ticks, nobody reading
            stats = stream.stats()
            assert stats["dropped"]["market@crypto_latest_price"] > 0
            assert stats["buffered"] <= 5
            first = await stream.recv(timeout=1)
            assert first.params["crypto_ids"] in (1, 2)


# -- the sync facade ----------------------------------------------------------------------------


async def test_sync_client_has_the_same_features() -> None:
    async with running_server(speed=100) as node:

        def use() -> tuple[list[cmcstream.Push], dict[str, Any], list[dict[str, Any]]]:
            with cmcstream.SyncClient(node.demo_key, node.url, numbers="decimal") as client:
                ack = client.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
                assert ack.sub_count == 2
                got = []
                for push in client:
                    got.append(push)
                    if len(got) == 4:
                        break
                with pytest.raises(exc.ChannelError):
                    client.subscribe("nope", crypto_ids=1)
                with pytest.raises(TimeoutError):
                    client.recv(timeout=0)
                assert client.state is ConnectionState.OPEN
                assert client.connections == 1
                return got, client.stats(), client.subscriptions

        got, stats, subs = await asyncio.to_thread(use)
        assert {p.params["crypto_ids"] for p in got} == {1, 1027}
        assert type(got[0].data.p).__name__ == "Decimal"
        assert stats["received"] >= 4
        assert len(subs) == 2
        with pytest.raises(exc.InvalidKey):
            await asyncio.to_thread(cmcstream.SyncClient, "bad-key", node.url)


def test_a_stream_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMC_PRO_API_KEY", raising=False)
    with pytest.raises(exc.MissingKey):
        Stream(url="ws://127.0.0.1:1/v1")
    monkeypatch.setenv("CMC_PRO_API_KEY", "from-env")
    assert Stream(url="ws://127.0.0.1:1/v1").url == "ws://127.0.0.1:1/v1"


async def test_an_unreachable_server_fails_the_first_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(exc.ConnectionLost):
        await cmcstream.connect("k", f"ws://127.0.0.1:{port}/v1", open_timeout=2)
