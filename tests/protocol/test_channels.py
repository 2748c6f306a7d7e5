from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from cmcstream.protocol.channels import (
    CHANNELS,
    KLINE_INTERVALS,
    UNIQUE_TRADER_INTERVALS,
    ChannelRegistry,
    make_topic,
)
from cmcstream.protocol.codec import RequestError
from cmcstream.protocol.codes import ErrorCode
from cmcstream.protocol.platforms import DEFAULT_PLATFORMS, PlatformTable

REG = ChannelRegistry()
BSC_USDT = "0x55d398326f99059ff775485246999027b3197955"
SOL_WALLET = "6p6xgHyF7AeE6TZkSmFsko444wqoP15icUSqi2jfGiPN"
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def spec(name: str) -> Any:
    found = REG.get(name)
    assert found is not None
    return found


def norm(channel: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s.topic, dict(s.params)) for s in REG.normalize(spec(channel), params)]


def code_of(channel: str, params: dict[str, Any]) -> ErrorCode:
    with pytest.raises(RequestError) as info:
        REG.normalize(spec(channel), params)
    return info.value.code


def test_registry_matches_channels_json(channels_json: Any) -> None:
    documented = channels_json["channels"]
    assert {c.name for c in CHANNELS} == set(documented)
    for channel in CHANNELS:
        row = documented[channel.name]
        assert [p.name for p in channel.params] == [p["name"] for p in row["subscribe_params"]]
        assert [p.name for p in channel.params] == row["identity"]
    assert list(KLINE_INTERVALS) == channels_json["enums"]["KlineInterval"]
    assert (
        list(UNIQUE_TRADER_INTERVALS)
        == (channels_json["enums"]["UniqueTraderInterval_recommended_accept"])
    )


def test_crypto_ids_list_and_scalar_give_one_subscription_each() -> None:
    assert norm("market@crypto_latest_price", {"crypto_ids": [1027, 1, 1027]}) == [
        ("market@crypto_latest_price|1", {"crypto_ids": 1}),
        ("market@crypto_latest_price|1027", {"crypto_ids": 1027}),
    ]
    assert norm("market@crypto_latest_price", {"crypto_ids": 5}) == [
        ("market@crypto_latest_price|5", {"crypto_ids": 5})
    ]


def test_one_shared_subscription_per_topic_while_held() -> None:
    registry = ChannelRegistry()
    market = spec("market@crypto_latest_price")
    first = registry.normalize(market, {"crypto_ids": [1, 2]})
    again = registry.normalize(market, {"crypto_ids": 2})
    assert again[0] is first[1]
    topic = first[0].topic
    del first, again
    fresh = registry.normalize(market, {"crypto_ids": 1})
    assert fresh[0].topic == topic  # released when nobody held it, built anew


@pytest.mark.parametrize("bad", [[], [0], [-1], [1.5], [1.0], ["1"], [True], "1", {"a": 1}, [None]])
def test_bad_crypto_ids_are_2402(bad: Any) -> None:
    assert code_of("market@crypto_latest_price", {"crypto_ids": bad}) is ErrorCode.INVALID_PARAM


def test_missing_or_null_param_is_2401_with_the_documented_detail() -> None:
    with pytest.raises(RequestError) as info:
        REG.normalize(spec("market@crypto_latest_price"), {})
    assert info.value.code is ErrorCode.MISSING_PARAM
    assert info.value.detail == (
        "Param 'crypto_ids' is required for channel 'market@crypto_latest_price'."
    )
    assert code_of("market@crypto_latest_price", {"crypto_ids": None}) is ErrorCode.MISSING_PARAM


def test_first_missing_param_in_documented_order() -> None:
    with pytest.raises(RequestError) as info:
        REG.normalize(spec("onchain@kline"), {"platform_id": "x"})
    assert info.value.detail == "Param 'address' is required for channel 'onchain@kline'."


def test_evm_addresses_are_lowercased_and_deduplicated() -> None:
    upper = "0x55D398326F99059FF775485246999027B3197955"
    got = norm("onchain@kline", {"platform_id": 14, "address": [upper, BSC_USDT], "interval": "1m"})
    assert got == [
        (
            make_topic("onchain@kline", 14, BSC_USDT, "1m"),
            {"platform_id": 14, "address": BSC_USDT, "interval": "1m"},
        )
    ]


def test_solana_and_tron_addresses_keep_their_case() -> None:
    got = norm("onchain@holder_wallet_update", {"platform_id": 16, "wallet_address": SOL_WALLET})
    assert got[0][1] == {"platform_id": 16, "wallet_address": SOL_WALLET}
    assert norm("onchain@transaction", {"platform_id": 1958, "address": TRON})[0][1]["address"] == (
        TRON
    )


def test_other_chains_take_any_printable_token() -> None:
    addr = "0x2::sui::SUI"
    assert norm("onchain@transaction", {"platform_id": 20947, "address": [addr]})[0][1] == {
        "platform_id": 20947,
        "address": addr,
    }
    assert code_of("onchain@transaction", {"platform_id": 20947, "address": "a b"}) is (
        ErrorCode.INVALID_PARAM
    )


@pytest.mark.parametrize(
    "params",
    [
        {"platform_id": "14", "address": BSC_USDT},
        {"platform_id": 14.0, "address": BSC_USDT},
        {"platform_id": True, "address": BSC_USDT},
        {"platform_id": 999999, "address": BSC_USDT},
        {"platform_id": 14, "address": "0x1234"},
        {"platform_id": 14, "address": []},
        {"platform_id": 14, "address": [5]},
        {"platform_id": 16, "address": "0OIl" * 10},
        {"platform_id": 1958, "address": "X" + TRON[1:]},
    ],
)
def test_bad_onchain_params_are_2402(params: dict[str, Any]) -> None:
    assert code_of("onchain@transaction", params) is ErrorCode.INVALID_PARAM


def test_interval_is_an_exact_case_sensitive_enum() -> None:
    base = {"platform_id": 14, "address": BSC_USDT}
    for bad in ["1M", "1h", 60, ""]:
        assert code_of("onchain@kline", {**base, "interval": bad}) is ErrorCode.INVALID_PARAM
    with pytest.raises(RequestError) as info:
        REG.normalize(spec("onchain@kline"), {**base, "interval": "1h"})
    assert info.value.detail == (
        "Param 'interval' must be one of [1s, 5s, 30s, 1m, 3m, 5m, 15m, 30m] "
        "for channel 'onchain@kline'."
    )
    # Q4: unique_trader also takes 1h, 4h and 1d.
    assert norm("onchain@unique_trader", {**base, "interval": "1d"})[0][1]["interval"] == "1d"


def test_holder_channels_refuse_uncovered_platforms() -> None:
    params = {"platform_id": 20947, "address": "0x2::sui::SUI"}
    assert code_of("onchain@holders_metrics", params) is ErrorCode.INVALID_PARAM
    assert norm("onchain@token_metric", params)


def test_unknown_param_keys_are_ignored() -> None:
    assert norm("market@crypto_latest_price", {"crypto_ids": [1], "mode": "full"}) == norm(
        "market@crypto_latest_price", {"crypto_ids": 1}
    )


def test_platform_table_is_configurable() -> None:
    table = PlatformTable(DEFAULT_PLATFORMS[:1])
    assert len(table) == 1
    assert [p.id for p in table] == [1]
    registry = ChannelRegistry(platforms=table)
    with pytest.raises(RequestError):
        registry.normalize(spec("onchain@transaction"), {"platform_id": 14, "address": BSC_USDT})
    assert [c.name for c in registry] == [c.name for c in CHANNELS]
    assert not CHANNELS[0].onchain
    assert CHANNELS[1].onchain


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=50))
def test_ids_normalize_to_a_sorted_set_regardless_of_order(ids: list[int]) -> None:
    subs = REG.normalize(spec("market@crypto_latest_price"), {"crypto_ids": ids})
    assert [s.params["crypto_ids"] for s in subs] == sorted(set(ids))
    reversed_subs = REG.normalize(spec("market@crypto_latest_price"), {"crypto_ids": ids[::-1]})
    assert [s.topic for s in subs] == [s.topic for s in reversed_subs]


@given(st.lists(st.binary(min_size=20, max_size=20), min_size=1, max_size=10), st.randoms())
def test_evm_addresses_normalize_case_insensitively(raw: list[bytes], rnd: Any) -> None:
    addresses = ["0x" + b.hex() for b in raw]
    mixed = ["0x" + "".join(rnd.choice([c.upper(), c]) for c in a[2:]) for a in addresses]
    params = {"platform_id": 1, "address": mixed}
    subs = REG.normalize(spec("onchain@token_metric"), params)
    assert [s.params["address"] for s in subs] == sorted(set(addresses))


@given(
    st.one_of(
        st.none(), st.booleans(), st.floats(), st.text(), st.dictionaries(st.text(), st.integers())
    )
)
def test_anything_else_as_crypto_ids_is_a_documented_error(value: Any) -> None:
    with pytest.raises(RequestError) as info:
        REG.normalize(spec("market@crypto_latest_price"), {"crypto_ids": value})
    assert info.value.code in (ErrorCode.INVALID_PARAM, ErrorCode.MISSING_PARAM)


def test_a_topic_gives_back_its_subscription() -> None:
    registry = ChannelRegistry()
    (kline,) = registry.normalize(
        spec("onchain@kline"), {"platform_id": 14, "address": BSC_USDT, "interval": "1m"}
    )
    assert registry.subscription_of(kline.topic) is kline
    fresh = ChannelRegistry().subscription_of("market@crypto_latest_price|1027")
    assert fresh is not None
    assert dict(fresh.params) == {"crypto_ids": 1027}
    parsed = ChannelRegistry().subscription_of(kline.topic)
    assert parsed is not None
    assert dict(parsed.params) == dict(kline.params)
    for bad in (
        "market@nope|1",
        "market@crypto_latest_price",
        "market@crypto_latest_price|x",
        "market@crypto_latest_price|01",
        "onchain@kline|14|0xabc",
    ):
        assert ChannelRegistry().subscription_of(bad) is None


def test_a_push_names_its_subscription_by_channel_and_params() -> None:
    registry = ChannelRegistry()
    (kline,) = registry.normalize(
        spec("onchain@kline"), {"platform_id": 14, "address": BSC_USDT, "interval": "1m"}
    )
    assert registry.subscription_of_push("onchain@kline", dict(kline.params)) is kline
    market = registry.subscription_of_push("market@crypto_latest_price", {"crypto_ids": 1027})
    assert market is not None
    assert market.topic == "market@crypto_latest_price|1027"
    for channel, params in (
        ("market@nope", {"crypto_ids": 1}),  # no such channel
        ("market@crypto_latest_price", {}),  # a param missing
        ("market@crypto_latest_price", {"crypto_ids": 1, "x": 2}),  # one too many
        ("market@crypto_latest_price", {"ids": 1}),  # the wrong name
        ("market@crypto_latest_price", {"crypto_ids": True}),  # a bool is not an id
        ("market@crypto_latest_price", {"crypto_ids": [1, 2]}),  # a list names several
        ("market@crypto_latest_price", {"crypto_ids": 1.5}),
    ):
        assert registry.subscription_of_push(channel, params) is None
