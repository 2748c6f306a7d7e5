"""Our frames against the spec's example frames: same keys, same order, same types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmcstream.protocol import codec
from cmcstream.protocol.codes import ErrorCode
from cmcstream.protocol.messages import Ack, Pong, Welcome
from cmcstream.protocol.payloads import CryptoLatestPrice
from cmcstream.protocol.plans import PLANS, get_plan
from cmcstream.protocol.session import error_message
from tests.conftest import load_example


def shape(value: Any) -> Any:
    """Keys in order with the JSON type of each value (numbers as one type)."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def frame(message: Any) -> Any:
    return json.loads(codec.encode(message))


def test_welcome() -> None:
    ours = frame(Welcome(ping_interval_ms=10000, ts=1778663870000))
    assert ours == load_example("welcome.json")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "ack_subscribe.json",
            Ack(id=1, channel="market@crypto_latest_price", sub_count=2, sub_limit=100),
        ),
        (
            "ack_duplicate.json",
            Ack(
                id=5,
                channel="market@crypto_latest_price",
                sub_count=2,
                sub_limit=100,
                duplicate=True,
            ),
        ),
        ("ack_unsubscribe.json", Ack(id=2, channel="onchain@kline", sub_count=2, sub_limit=100)),
        ("ack_unsubscribe_all.json", Ack(id=4, sub_count=0, sub_limit=100)),
        ("pong.json", Pong(id=1, ts=1778659200000)),
    ],
)
def test_control_frames_match_examples_exactly(name: str, message: Any) -> None:
    assert frame(message) == load_example(name)
    assert list(frame(message)) == list(load_example(name))


@pytest.mark.parametrize(
    ("name", "code", "rid"),
    [
        ("error_2201_invalid_json.json", ErrorCode.INVALID_REQUEST, None),
        ("error_2301_unknown_channel.json", ErrorCode.UNKNOWN_CHANNEL, 7),
        ("error_2303_subscription_limit.json", ErrorCode.SUBSCRIPTION_LIMIT, 12),
        ("error_2401_missing_param.json", ErrorCode.MISSING_PARAM, 1),
        ("error_2402_invalid_interval.json", ErrorCode.INVALID_PARAM, 6),
    ],
)
def test_error_frames_match_examples(name: str, code: ErrorCode, rid: int | None) -> None:
    example = load_example(name)
    from msgspec import UNSET

    ours = frame(
        error_message(code, 1779328629125, example["status"]["error_detail"], rid or UNSET)
    )
    assert shape(ours) == shape(example)
    assert ours["status"]["error_message"] == example["status"]["error_message"]
    assert ours["status"]["error_code"] == example["status"]["error_code"]
    assert ours.get("id") == example.get("id")


def test_market_push_matches_the_example() -> None:
    example = load_example("data_market_crypto_latest_price.json")
    payload = CryptoLatestPrice(**example["data"])
    prefix = codec.data_prefix(example["channel"], example["params"])
    ours = json.loads(codec.encode_data(prefix, payload, example["ts"]))
    assert ours == example
    assert shape(ours) == shape(example)


def test_plans() -> None:
    assert get_plan("Startup").websocket
    assert not get_plan("hobbyist").websocket
    assert {"standard", "growth"} <= set(PLANS)
    assert all(
        p.subscription_limit == 100
        for p in PLANS.values()
        if p.websocket and p.name != "enterprise"
    )
    with pytest.raises(KeyError):
        get_plan("free")
