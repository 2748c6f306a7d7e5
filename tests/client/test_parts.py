"""The client's parts without sockets: items, dedupe, backoff, buffer, frames, errors."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal
from typing import Any

import pytest

from cmcstream import exceptions as exc
from cmcstream.client.backoff import Backoff
from cmcstream.client.buffer import Overflow, PushBuffer
from cmcstream.client.dedupe import Deduper
from cmcstream.client.frames import FrameDecoder, Push
from cmcstream.client.items import group, split
from cmcstream.client.payloads import (
    CHANNEL_PAYLOADS,
    CryptoLatestPrice,
    HolderCount,
    PoolMetric,
    TokenBalance,
    Transaction,
)
from tests.conftest import spec_dir

EVM = "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d"


# -- items -------------------------------------------------------------------------------------


def test_split_makes_one_item_per_identity_and_lowercases_evm_addresses() -> None:
    items = split(
        "onchain@kline", {"platform_id": 14, "address": [EVM, EVM.lower()], "interval": "1m"}
    )
    assert len(items) == 1
    assert items[0].params() == {"platform_id": 14, "interval": "1m", "address": EVM.lower()}
    ids = split("market@crypto_latest_price", {"crypto_ids": [1027, 1, 1027]})
    assert [item.value for item in ids] == [1027, 1]
    assert split("market@crypto_latest_price", {"crypto_ids": 1})[0].value == 1


def test_split_keeps_solana_case_and_passes_unknown_shapes_through() -> None:
    sol = "9xfck63hjqszuj8AFH9aVdZfFWZfu6fG9Xe4VEwPViyX"
    assert split("onchain@transaction", {"platform_id": 16, "address": sol})[0].value == sol
    (item,) = split("market@crypto_latest_price", {})
    assert item.list_param is None
    assert item.params() == {}
    (odd,) = split("onchain@unknown", {"address": ["x"], "extra": {"a": [1]}})
    assert odd.list_param == "address"


def test_group_rebuilds_one_request_per_channel_and_scalars() -> None:
    items = split(
        "onchain@kline",
        {"platform_id": 14, "address": ["0x" + "1" * 40, "0x" + "2" * 40], "interval": "1m"},
    )
    items += split(
        "onchain@kline", {"platform_id": 14, "address": "0x" + "3" * 40, "interval": "5m"}
    )
    items += split("market@crypto_latest_price", {"crypto_ids": [1, 2]})
    requests = group(items)
    assert requests == [
        (
            "onchain@kline",
            {"interval": "1m", "platform_id": 14, "address": ["0x" + "1" * 40, "0x" + "2" * 40]},
        ),
        ("onchain@kline", {"interval": "5m", "platform_id": 14, "address": ["0x" + "3" * 40]}),
        ("market@crypto_latest_price", {"crypto_ids": [1, 2]}),
    ]


# -- dedupe ------------------------------------------------------------------------------------


def test_dedupe_on_tx_and_log_index_with_bounded_memory() -> None:
    deduper = Deduper(capacity=2)
    swap = {"pid": 14, "tx": "0xa", "lgid": 7}
    assert not deduper.is_duplicate("onchain@transaction", swap)
    assert deduper.is_duplicate("onchain@transaction", dict(swap))
    assert not deduper.is_duplicate("onchain@transaction", {**swap, "lgid": 8})
    assert not deduper.is_duplicate("onchain@liquidity_event", swap)  # another channel
    assert len(deduper) == 2  # the oldest identity was forgotten
    assert not deduper.is_duplicate("onchain@transaction", swap)
    assert deduper.dropped == 1


def test_dedupe_reads_typed_payloads_and_solana_instruction_index() -> None:
    deduper = Deduper()
    sol = Transaction[float](pid=16, tx="5x", iix=3)
    assert not deduper.is_duplicate("onchain@transaction", sol)
    assert deduper.is_duplicate("onchain@transaction", Transaction[float](pid=16, tx="5x", iix=3))
    # Without a log index two swaps of one transaction cannot be told apart: both pass.
    bare = Transaction[float](pid=14, tx="0xb")
    assert not deduper.is_duplicate("onchain@transaction", bare)
    assert not deduper.is_duplicate("onchain@transaction", bare)
    with pytest.raises(ValueError, match="positive"):
        Deduper(0)


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = Backoff(base_s=1.0, cap_s=8.0, limited_base_s=10.0, limited_cap_s=40.0)
    rng = random.Random(1)
    for attempt, bound in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        draws = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in draws)
        assert max(draws) > bound * 0.8  # it spreads over the whole range
        assert min(draws) < bound * 0.2
    limited = [policy.delay(1, limited=True, rng=rng) for _ in range(200)]
    assert max(limited) > 8.0  # 4004 waits longer than any plain retry may
    assert all(d <= 10.0 for d in limited)


# -- buffer ------------------------------------------------------------------------------------


def push(channel: str, ident: Any, value: float, tp: str | None = None) -> Push:
    key = "crypto_ids" if channel.startswith("market") else "address"
    data: dict[str, Any] = {"p": value}
    if tp is not None:
        data["tp"] = tp
    return Push(channel, {key: ident}, data, 0, 0.0)


async def test_latest_policy_replaces_queued_latest_values_and_counts_them() -> None:
    buffer = PushBuffer(capacity=3, overflow=Overflow.LATEST)
    await buffer.put(push("market@crypto_latest_price", 1, 1.0))
    await buffer.put(push("market@crypto_latest_price", 2, 1.0))
    await buffer.put(push("onchain@holders_metrics", "x", 1.0, tp="holder_count"))
    await buffer.put(push("market@crypto_latest_price", 1, 2.0))  # full: replaces id 1
    await buffer.put(push("onchain@holders_metrics", "x", 2.0, tp="holder_count"))
    assert dict(buffer.dropped) == {"market@crypto_latest_price": 1, "onchain@holders_metrics": 1}
    got = [buffer.get_nowait() for _ in range(3)]
    assert [(p.params, p.data["p"]) for p in got if p] == [
        ({"crypto_ids": 1}, 2.0),
        ({"crypto_ids": 2}, 1.0),
        ({"address": "x"}, 2.0),
    ]
    assert buffer.get_nowait() is None
    assert buffer.high_water == 3


async def test_event_channels_wait_for_room_instead_of_dropping() -> None:
    buffer = PushBuffer(capacity=1, overflow="latest")
    await buffer.put(push("onchain@transaction", "x", 1.0))
    blocked = asyncio.create_task(buffer.put(push("onchain@transaction", "x", 2.0)))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert (await buffer.get()).data["p"] == 1.0
    await blocked
    assert (await buffer.get()).data["p"] == 2.0
    assert not buffer.dropped


async def test_wait_policy_never_drops_and_close_drains_then_raises() -> None:
    buffer = PushBuffer(capacity=1)
    await buffer.put(push("market@crypto_latest_price", 1, 1.0))
    blocked = asyncio.create_task(buffer.put(push("market@crypto_latest_price", 1, 2.0)))
    await asyncio.sleep(0)
    assert not blocked.done()
    failure = exc.KeyDisabled("gone")
    buffer.close(failure)
    await blocked  # a closed buffer releases writers
    assert (await buffer.get()).data["p"] == 1.0
    with pytest.raises(exc.KeyDisabled):
        await buffer.get()
    ended = PushBuffer(capacity=1)
    ended.close()
    with pytest.raises(StopAsyncIteration):
        await ended.get()
    with pytest.raises(ValueError, match="positive"):
        PushBuffer(0)


# -- frames ------------------------------------------------------------------------------------


def examples() -> list[dict[str, Any]]:
    folder = spec_dir() / "examples"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("data_*.json"))]


def test_every_documented_push_decodes_into_its_type() -> None:
    decoder = FrameDecoder()
    frames = examples()
    assert {frame["channel"] for frame in frames} == set(CHANNEL_PAYLOADS)
    for frame in frames:
        env = decoder.envelope(json.dumps(frame))
        assert env is not None
        got = decoder.push(env, 1.0)
        assert got is not None
        assert not isinstance(got.data, dict), frame["channel"]
        assert got.channel == frame["channel"]
        assert got.params == frame["params"]
        assert got.ts == frame["ts"]
        for name, value in frame["data"].items():
            attr = {"5m": "m5", "1h": "h1", "4h": "h4", "24h": "h24", "7d": "d7"}.get(name, name)
            read = getattr(got.data, attr)
            if isinstance(value, dict | list):
                continue
            assert read == value, (frame["channel"], name)
    assert decoder.unreadable == 0


def test_decimal_mode_keeps_the_digits_on_the_wire() -> None:
    decoder = FrameDecoder("decimal")
    text = (
        '{"type":"data","channel":"market@crypto_latest_price","params":{"crypto_ids":1},'
        '"data":{"cid":1,"p":0.1000000000000000055511151231257827,"mc":null},"ts":5}'
    )
    env = decoder.envelope(text)
    assert env is not None
    got = decoder.push(env)
    assert got is not None
    assert isinstance(got.data, CryptoLatestPrice)
    assert got.data.p == Decimal("0.1000000000000000055511151231257827")
    assert got.data.mc is None
    assert got.data.vu is None  # left out by the server: None, not an error
    raw = FrameDecoder("decimal", typed=False).payload("onchain@kline", b'{"o":1.10,"ot":1}')
    assert raw == {"o": Decimal("1.10"), "ot": 1}
    with pytest.raises(ValueError, match="numbers"):
        FrameDecoder("double")  # type: ignore[arg-type]


def test_holder_variants_route_on_tp_and_unknown_shapes_stay_data() -> None:
    decoder = FrameDecoder()
    count = decoder.payload(
        "onchain@holders_metrics", b'{"pid":14,"a":"0x1","tp":"holder_count","ts":1,"hc":5}'
    )
    assert isinstance(count, HolderCount)
    assert count.tp == "holder_count"
    balance = decoder.payload(
        "onchain@holder_wallet_update", b'{"pid":14,"wa":"w","tp":"token_balance","b":2.5}'
    )
    assert isinstance(balance, TokenBalance)
    assert balance.b == 2.5
    unknown = decoder.payload("onchain@holders_metrics", b'{"tp":"whale_alert","x":1}')
    assert unknown == {"tp": "whale_alert", "x": 1}
    other = decoder.payload("onchain@brand_new", b'{"x":1}')
    assert other == {"x": 1}
    pool = decoder.payload("onchain@pool_metric", b'{"pid":16,"pa":"p","5m":{"ut":3},"future":1}')
    assert isinstance(pool, PoolMetric)
    assert pool.m5 is not None
    assert pool.m5.ut == 3


def test_unknown_and_malformed_frames_are_counted_not_fatal() -> None:
    decoder = FrameDecoder()
    assert decoder.envelope("[1,2]") is None
    assert decoder.envelope("not json") is None
    env = decoder.envelope('{"type":"announcement","text":"hello","ts":1}')
    assert env is not None
    assert env.type == "announcement"
    data_without_payload = decoder.envelope('{"type":"data","channel":"x"}')
    assert data_without_payload is not None
    assert decoder.push(data_without_payload) is None
    assert decoder.unreadable == 3


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("1001", exc.InvalidKey),
        ("1002", exc.MissingKey),
        ("1003", exc.KeyNotActivated),
        ("1004", exc.PlanExpired),
        ("1006", exc.PlanNotSupported),
        ("1007", exc.KeyDisabled),
        ("1010", exc.CreditsExhausted),
        ("2201", exc.InvalidRequest),
        ("2303", exc.ChannelError),
        ("2304", exc.ConnectionLimited),
        ("2402", exc.InvalidParams),
        ("5001", exc.ServerError),
        ("9999", exc.ServerError),
        ("oops", exc.ServerError),
    ],
)
def test_error_frames_map_onto_the_tree(code: str, kind: type[Exception]) -> None:
    status = {"error_code": code, "category": "PROTOCOL", "error_message": "m", "error_detail": "d"}
    error = exc.error_for_status(status)
    assert type(error) is kind
    assert isinstance(error, exc.CMCStreamError)
    assert str(error) == "m d"
    if code.isdigit():
        assert error.error_code == int(code)
        assert error.detail == "d"


def test_close_codes_4100_4101_4102_are_fatal_and_others_are_not() -> None:
    assert isinstance(exc.auth_error_for_close(4100, ""), exc.InvalidKey)
    assert isinstance(exc.auth_error_for_close(4101, "API key disabled"), exc.KeyDisabled)
    error = exc.auth_error_for_close(4102, "Plan not support WS")
    assert isinstance(error, exc.PlanNotSupported)
    assert error.close_code == 4102
    for retryable in (1000, 1001, 1006, 1011, 1012, 1013, 1014, 4004):
        assert exc.auth_error_for_close(retryable, "") is None
