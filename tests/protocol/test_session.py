"""The request-handling matrix of PROTOCOL.md §13, one test per row and then some."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

from cmcstream.protocol import codec
from cmcstream.protocol.channels import ChannelRegistry
from cmcstream.protocol.messages import Ack, Error, Pong, Request
from cmcstream.protocol.session import (
    Counting,
    Effect,
    Reply,
    Session,
    Subscribe,
    Unsubscribe,
    iso_timestamp,
)

NOW = 1_779_324_429_125  # 2026-05-21T00:47:09.125Z
BSC_USDT = "0x55d398326f99059ff775485246999027b3197955"
REG = ChannelRegistry()


def session(**kwargs: Any) -> Session:
    return Session(REG, **kwargs)


def send(s: Session, request: Any) -> list[Effect]:
    raw = request if isinstance(request, str | bytes) else json.dumps(request)
    return s.receive_text(raw, NOW)


def replies(effects: list[Effect]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for effect in effects:
        if isinstance(effect, Reply):
            out.append(json.loads(codec.encode(effect.message)))
    return out


def only_reply(effects: list[Effect]) -> dict[str, Any]:
    got = replies(effects)
    assert len(got) == 1
    return got[0]


def error_code(effects: list[Effect]) -> str:
    reply = only_reply(effects)
    assert reply["type"] == "error"
    return str(reply["status"]["error_code"])


def sub(ids: Any, rid: Any = 1) -> dict[str, Any]:
    return {
        "id": rid,
        "method": "subscribe",
        "channel": "market@crypto_latest_price",
        "params": {"crypto_ids": ids},
    }


# -- frame and JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["nope", "{", "[1,2]", "42", '"x"', "null", "true"])
def test_not_json_or_not_an_object_is_2201_without_id(text: str) -> None:
    reply = only_reply(send(session(), text))
    assert reply == {
        "type": "error",
        "status": {
            "timestamp": "2026-05-21T00:47:09.125Z",
            "error_code": "2201",
            "category": "PROTOCOL",
            "error_message": "Invalid request format.",
            "error_detail": "Request must be a JSON object.",
        },
    }


def test_binary_frame_is_2201() -> None:
    assert error_code(session().receive_binary(b'{"method":"ping"}', NOW)) == "2201"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"id": [1], "method": "ping"}, "id"),
        ({"id": True, "method": "ping"}, "id"),
        ({"id": {}, "method": "ping"}, "id"),
        ({"method": 5}, "method"),
        ({"method": "subscribe", "channel": 1}, "channel"),
        ({"method": "subscribe", "channel": "market@crypto_latest_price", "params": [1]}, "params"),
    ],
)
def test_wrong_typed_fields_are_2201(request_: dict[str, Any], field: str) -> None:
    reply = only_reply(send(session(), request_))
    assert reply["status"]["error_code"] == "2201"
    assert f"'{field}'" in reply["status"]["error_detail"]


def test_empty_frame_is_2203() -> None:
    s = session()
    assert error_code(s.receive_text("", NOW)) == "2203"
    assert error_code(s.receive_binary(b"", NOW)) == "2203"


def test_frame_over_the_limit_is_2203() -> None:
    s = session(max_frame_bytes=100)
    padded = json.dumps({"method": "ping", "pad": "x" * 200})
    assert error_code(s.receive_text(padded, NOW)) == "2203"
    assert error_code(s.receive_binary(b"x" * 101, NOW)) == "2203"
    # Multi-byte characters count in bytes, not characters.
    assert error_code(s.receive_text('{"method":"ping","p":"' + "é" * 40 + '"}', NOW)) == "2203"
    assert only_reply(s.receive_text('{"method":"ping","p":"' + "é" * 20 + '"}', NOW))["type"] == (
        "pong"
    )


# -- method --------------------------------------------------------------------------------------


def test_missing_method_is_2204_with_the_documented_detail() -> None:
    reply = only_reply(send(session(), {"id": 3}))
    assert reply["id"] == 3
    assert reply["status"]["error_code"] == "2204"
    assert reply["status"]["error_message"] == "Missing required field."
    assert reply["status"]["error_detail"] == "Field 'method' is required."


@pytest.mark.parametrize("method", ["SUBSCRIBE", "Ping", "publish", ""])
def test_unknown_or_wrong_case_method_is_2202(method: str) -> None:
    assert error_code(send(session(), {"id": 1, "method": method})) == "2202"


def test_ping_gets_pong_with_the_id_echoed() -> None:
    assert only_reply(send(session(), {"id": 1, "method": "ping"})) == {
        "type": "pong",
        "id": 1,
        "code": 0,
        "ts": NOW,
    }
    assert only_reply(send(session(), {"method": "ping"})) == {"type": "pong", "code": 0, "ts": NOW}


@pytest.mark.parametrize("rid", [7, "abc", 1.5, -3, 2**53])
def test_id_is_echoed_unchanged(rid: Any) -> None:
    assert only_reply(send(session(), {"id": rid, "method": "ping"}))["id"] == rid
    assert only_reply(send(session(), {"id": rid, "method": "nope"}))["id"] == rid


def test_null_id_is_treated_as_absent() -> None:
    assert "id" not in only_reply(send(session(), {"id": None, "method": "ping"}))


# -- channel -------------------------------------------------------------------------------------


def test_subscribe_or_unsubscribe_without_channel_is_2204() -> None:
    for method in ("subscribe", "unsubscribe"):
        reply = only_reply(send(session(), {"id": 1, "method": method}))
        assert reply["status"]["error_code"] == "2204"
        assert "'channel'" in reply["status"]["error_detail"]


def test_unknown_channel_is_2301() -> None:
    reply = only_reply(
        send(session(), {"id": 7, "method": "subscribe", "channel": "market@kline", "params": {}})
    )
    assert reply["id"] == 7
    assert reply["status"]["error_code"] == "2301"
    assert reply["status"]["error_detail"] == "Channel 'market@kline' does not exist."
    assert error_code(send(session(), {"method": "unsubscribe", "channel": "x@y"})) == "2301"


def test_channel_not_on_plan_is_2302() -> None:
    s = session(channels=frozenset({"market@crypto_latest_price"}))
    request = {
        "method": "subscribe",
        "channel": "onchain@transaction",
        "params": {"platform_id": 14, "address": BSC_USDT},
    }
    assert error_code(send(s, request)) == "2302"
    assert only_reply(send(s, sub([1])))["type"] == "ack"


# -- params --------------------------------------------------------------------------------------


def test_missing_params_is_2401() -> None:
    request = {"id": 1, "method": "subscribe", "channel": "market@crypto_latest_price"}
    reply = only_reply(send(session(), request))
    assert reply["status"]["error_code"] == "2401"
    assert reply["status"]["error_detail"] == (
        "Param 'crypto_ids' is required for channel 'market@crypto_latest_price'."
    )


def test_invalid_param_is_2402() -> None:
    assert error_code(send(session(), sub([]))) == "2402"
    assert error_code(send(session(), sub(["1"]))) == "2402"


# -- subscribe, limit, duplicate ---------------------------------------------------------------


def test_subscribe_acks_with_per_item_count_and_emits_subscribe() -> None:
    s = session()
    effects = send(s, sub([1, 1027]))
    assert isinstance(effects[0], Subscribe)
    assert [x.topic for x in effects[0].subscriptions] == [
        "market@crypto_latest_price|1",
        "market@crypto_latest_price|1027",
    ]
    assert replies(effects) == [
        {
            "type": "ack",
            "id": 1,
            "code": 0,
            "msg": "ok",
            "channel": "market@crypto_latest_price",
            "sub_count": 2,
            "sub_limit": 100,
        }
    ]


def test_repeat_subscribe_is_a_duplicate_ack() -> None:
    s = session()
    send(s, sub([1, 1027]))
    effects = send(s, sub([1027, 1], rid=5))
    assert effects == [
        Reply(
            Ack(
                id=5,
                channel="market@crypto_latest_price",
                sub_count=2,
                sub_limit=100,
                duplicate=True,
            )
        )
    ]
    assert only_reply(effects)["duplicate"] is True


def test_partly_new_subscribe_adds_only_the_new_items() -> None:
    s = session()
    send(s, sub([1]))
    effects = send(s, sub([1, 2]))
    assert isinstance(effects[0], Subscribe)
    assert [x.topic for x in effects[0].subscriptions] == ["market@crypto_latest_price|2"]
    assert "duplicate" not in only_reply(effects)
    assert s.sub_count == 2


def test_limit_rejects_the_whole_request_and_adds_nothing() -> None:
    s = session()
    assert only_reply(send(s, sub(list(range(1, 101)))))["sub_count"] == 100
    reply = only_reply(send(s, sub([101], rid=12)))
    assert reply["id"] == 12
    assert reply["status"]["error_code"] == "2303"
    assert reply["status"]["error_message"] == "Subscription limit reached."
    assert reply["status"]["error_detail"] == (
        "Subscription limit reached for this connection (current=100, requested=1, max=100)."
    )
    assert s.sub_count == 100
    assert "market@crypto_latest_price|101" not in s.subscriptions
    # Already subscribed items are still a duplicate, not a limit error.
    assert only_reply(send(s, sub([5])))["duplicate"] is True


def test_a_request_that_would_cross_the_limit_adds_nothing() -> None:
    s = session(sub_limit=3)
    send(s, sub([1, 2]))
    assert error_code(send(s, sub([3, 4]))) == "2303"
    assert s.sub_count == 2


# -- unsubscribe ---------------------------------------------------------------------------------


def kline(interval: str = "1m") -> dict[str, Any]:
    return {"platform_id": 14, "address": [BSC_USDT], "interval": interval}


def test_unsubscribe_specific_removes_exactly_those() -> None:
    s = session()
    send(s, sub([1, 1027]))
    send(s, {"id": 2, "method": "subscribe", "channel": "onchain@kline", "params": kline()})
    effects = send(
        s, {"id": 2, "method": "unsubscribe", "channel": "onchain@kline", "params": kline()}
    )
    assert effects[0] == Unsubscribe((f"onchain@kline|14|{BSC_USDT}|1m",))
    assert only_reply(effects) == {
        "type": "ack",
        "id": 2,
        "code": 0,
        "msg": "ok",
        "channel": "onchain@kline",
        "sub_count": 2,
        "sub_limit": 100,
    }


def test_unsubscribe_of_something_not_subscribed_is_an_idempotent_ack() -> None:
    s = session()
    send(s, sub([1]))
    effects = send(
        s, {"id": 9, "method": "unsubscribe", "channel": "onchain@kline", "params": kline()}
    )
    assert [e for e in effects if isinstance(e, Unsubscribe)] == []
    assert only_reply(effects)["sub_count"] == 1


def test_unsubscribe_whole_channel() -> None:
    s = session()
    send(s, sub([1, 2, 3]))
    send(s, {"method": "subscribe", "channel": "onchain@kline", "params": kline("1s")})
    send(s, {"method": "subscribe", "channel": "onchain@kline", "params": kline("5s")})
    effects = send(s, {"id": 3, "method": "unsubscribe", "channel": "onchain@kline"})
    assert isinstance(effects[0], Unsubscribe)
    assert len(effects[0].topics) == 2
    assert only_reply(effects)["sub_count"] == 3


def test_unsubscribe_with_invalid_params_is_an_error() -> None:
    request = {"method": "unsubscribe", "channel": "onchain@kline", "params": {"platform_id": 14}}
    assert error_code(send(session(), request)) == "2401"


def test_unsubscribe_all_acks_without_channel() -> None:
    s = session()
    send(s, sub([1, 2]))
    effects = send(s, {"id": 4, "method": "unsubscribe_all"})
    assert isinstance(effects[0], Unsubscribe)
    assert only_reply(effects) == {
        "type": "ack",
        "id": 4,
        "code": 0,
        "msg": "ok",
        "sub_count": 0,
        "sub_limit": 100,
    }
    assert len(send(s, {"id": 5, "method": "unsubscribe_all"})) == 1


# -- per-request counting --------------------------------------------------------------------


def test_per_request_counting_counts_requests() -> None:
    s = session(counting=Counting.PER_REQUEST, sub_limit=2)
    assert only_reply(send(s, sub([1, 1027])))["sub_count"] == 1
    assert only_reply(send(s, sub([5, 6])))["sub_count"] == 2
    assert error_code(send(s, sub([7]))) == "2303"
    assert only_reply(send(s, sub([1])))["duplicate"] is True
    # Removing part of a request keeps it counted; removing all of it frees the slot.
    request = {"method": "unsubscribe", "channel": "market@crypto_latest_price"}
    assert only_reply(send(s, {**request, "params": {"crypto_ids": [1]}}))["sub_count"] == 2
    assert only_reply(send(s, {**request, "params": {"crypto_ids": [1027]}}))["sub_count"] == 1
    assert only_reply(send(s, sub([7])))["sub_count"] == 2


# -- unexpected failures -----------------------------------------------------------------------


def test_unexpected_exception_is_5001(monkeypatch: pytest.MonkeyPatch) -> None:
    s = session()

    def boom(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(s.registry, "select", boom)
    reply = only_reply(send(s, sub([1], rid=8)))
    assert reply["id"] == 8
    assert reply["status"] == {
        "timestamp": iso_timestamp(NOW),
        "error_code": "5001",
        "category": "SERVER",
        "error_message": "Internal server error.",
    }
    assert s.sub_count == 0


def test_handle_takes_decoded_requests() -> None:
    effects = session().handle(Request(id=1, method="ping"), NOW)
    assert effects == [Reply(Pong(id=1, ts=NOW))]


def test_iso_timestamp() -> None:
    assert iso_timestamp(1_779_328_629_125) == "2026-05-21T01:57:09.125Z"
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"


# -- properties ----------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_any_bytes_get_a_reply_never_an_exception(data: bytes) -> None:
    s = session(max_frame_bytes=200)
    for effects in (s.receive_binary(data, NOW), s.receive_text(data, NOW)):
        assert any(isinstance(e, Reply) for e in effects)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": json_values,
            "method": st.sampled_from(["subscribe", "unsubscribe", "unsubscribe_all", "ping", "x"]),
            "channel": st.sampled_from([c.name for c in REG] + ["nope"]),
            "params": json_values,
        },
    )
)
def test_any_request_gets_exactly_one_reply_and_the_count_stays_consistent(
    request_: dict[str, Any],
) -> None:
    s = session()
    send(s, sub([1, 2]))
    effects = send(s, msgspec.json.encode(request_).decode())
    assert len(replies(effects)) == 1
    reply = replies(effects)[0]
    assert reply["type"] in ("ack", "pong", "error")
    if reply["type"] == "error":
        assert not [e for e in effects if not isinstance(e, Reply)]
        assert isinstance(next(e for e in effects if isinstance(e, Reply)).message, Error)
    if reply["type"] == "ack":
        assert reply["sub_count"] == s.sub_count == len(s.subscriptions)


# -- bounded work and credits --------------------------------------------------------------------


def test_a_request_naming_more_than_the_limit_is_refused_before_it_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cmcstream.protocol.channels import Selection

    def never(self: Selection) -> Any:
        raise AssertionError("built")

    s = session()
    monkeypatch.setattr(Selection, "subscriptions", never)
    reply = only_reply(send(s, sub(list(range(1, 10_001)), rid=3)))
    assert reply["status"]["error_detail"] == (
        "Subscription limit reached for this connection (current=0, requested=10000, max=100)."
    )
    # Per-request counting bounds a request's size the same way.
    assert error_code(send(session(counting=Counting.PER_REQUEST), sub(list(range(1, 102))))) == (
        "2303"
    )


def test_a_huge_unsubscribe_walks_the_subscriptions_instead() -> None:
    s = session()
    send(s, sub([1, 5, 9]))
    send(s, {"id": 2, "method": "subscribe", "channel": "onchain@kline", "params": kline()})
    send(s, {"id": 3, "method": "subscribe", "channel": "onchain@kline", "params": kline("5m")})
    effects = send(s, {**sub(list(range(2, 5001)), rid=4), "method": "unsubscribe"})
    assert isinstance(effects[0], Unsubscribe)
    assert sorted(effects[0].topics) == [
        "market@crypto_latest_price|5",
        "market@crypto_latest_price|9",
    ]
    wide = {**kline(), "address": [BSC_USDT, *(f"0x{n:040x}" for n in range(1, 10))]}
    effects = send(
        s, {"id": 5, "method": "unsubscribe", "channel": "onchain@kline", "params": wide}
    )
    assert isinstance(effects[0], Unsubscribe)
    assert effects[0].topics == (f"onchain@kline|14|{BSC_USDT}|1m",)
    assert sorted(s.subscriptions) == [
        "market@crypto_latest_price|1",
        f"onchain@kline|14|{BSC_USDT}|5m",
    ]


def test_a_subscribe_the_credits_do_not_cover_is_refused_with_1010() -> None:
    from cmcstream.protocol.billing import Account, PerMessage, PerSubscription

    account = Account(250)
    s = session(account=account, meter=PerSubscription())
    assert only_reply(send(s, sub([1, 2])))["sub_count"] == 2
    reply = only_reply(send(s, sub([3], rid=9)))
    assert reply["id"] == 9
    assert reply["status"]["error_code"] == "1010"
    assert reply["status"]["error_detail"] == (
        "1 new subscription(s) cost 0.1 credits; 0.05 remain this month."
    )
    assert s.sub_count == 2
    assert account.spent == 200
    # A duplicate costs nothing, and so does any subscription billed per message.
    assert only_reply(send(s, sub([1])))["duplicate"] is True
    free = session(account=Account(0), meter=PerMessage())
    assert only_reply(send(free, sub([1, 2, 3])))["sub_count"] == 3
