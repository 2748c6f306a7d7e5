"""The console's pieces without a server: subscription syntax, error wording, figures."""

from __future__ import annotations

import re

import pytest

from cmcstream.client import DEFAULT_URL
from cmcstream.console.selectors import Selectors
from cmcstream.console.session import describe
from cmcstream.console.subscriptions import Sub, collect, parse_file, parse_sub
from cmcstream.console.tail import clock, number, summary
from cmcstream.exceptions import ConnectionLost, InvalidKey

A = "0x" + "ab" * 20
B = "0x" + "cd" * 20
NONE = Selectors()


def test_pairs_take_lists_aliases_and_typed_values() -> None:
    assert parse_sub("market@crypto_latest_price:crypto_ids=1,1027, 825", NONE) == Sub(
        "market@crypto_latest_price", {"crypto_ids": [1, 1027, 825]}
    )
    assert parse_sub(f"onchain@kline:platform=14,address={A},{B},interval=5m", NONE) == Sub(
        "onchain@kline", {"platform_id": 14, "address": [A, B], "interval": "5m"}
    )
    assert parse_sub(f"onchain@holder_wallet_update:platform_id=16,wallet={A}", NONE) == Sub(
        "onchain@holder_wallet_update", {"platform_id": 16, "wallet_address": [A]}
    )


def test_json_params_pass_as_written() -> None:
    sub = parse_sub('onchain@pool_metric:{"platform_id": 16, "pool_address": "58oQ"}', NONE)
    assert sub == Sub("onchain@pool_metric", {"platform_id": 16, "pool_address": "58oQ"})


def test_params_left_out_come_from_the_options() -> None:
    options = Selectors(platform=14, address=(A,))
    assert parse_sub("onchain@kline", options).params == {
        "platform_id": 14,
        "address": [A],
        "interval": "1m",
    }
    assert parse_sub(f"onchain@kline:address={B},interval=1s", options).params == {
        "address": [B],
        "interval": "1s",
        "platform_id": 14,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("market@kline:ids=1", "unknown channel 'market@kline'"),
        ("market@crypto_latest_price:ids=one", "crypto_ids takes numbers"),
        ("market@crypto_latest_price:1027", "expected key=value, got '1027'"),
        ("market@crypto_latest_price:ids=", "no value for crypto_ids"),
        ("market@crypto_latest_price:coin=1", "takes no 'coin'; its params are: crypto_ids"),
        (f"onchain@kline:platform_id=14,16,address={A}", "platform_id takes one value"),
        ("onchain@kline:platform_id=14,interval=1m", "needs address=… (or --address)"),
        ("onchain@kline:{not json", "not valid JSON"),
        ("onchain@kline:[1]", "expected key=value"),
    ],
)
def test_a_bad_sub_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_sub(text, NONE)


def test_files_hold_a_json_list_or_one_entry_a_line() -> None:
    listed = parse_file(
        f'[{{"channel": "onchain@transaction", "params": {{"platform_id": 14, "address": "{A}"}}}},'
        ' "market@crypto_latest_price:ids=1"]',
        "subs.json",
        NONE,
    )
    lines = parse_file(
        "# comment\n\n"
        f'{{"id": 7, "method": "subscribe", "channel": "onchain@transaction",'
        f' "params": {{"platform_id": 14, "address": "{A}"}}}}\n'
        "market@crypto_latest_price:ids=1\n",
        "subs.jsonl",
        NONE,
    )
    assert (
        listed
        == lines
        == [
            Sub("onchain@transaction", {"platform_id": 14, "address": A}),
            Sub("market@crypto_latest_price", {"crypto_ids": [1]}),
        ]
    )
    with pytest.raises(ValueError, match=r"^subs.json: entry 1: an entry needs \"channel\""):
        parse_file('[{"params": {}}]', "subs.json", NONE)
    with pytest.raises(ValueError, match=r"^s.jsonl:2: "):
        parse_file(
            "market@crypto_latest_price:ids=1\nmarket@crypto_latest_price:x=1\n", "s.jsonl", NONE
        )


def test_collect_keeps_the_single_channel_form() -> None:
    options = Selectors(ids=("1,1027",))
    assert collect("market@crypto_latest_price", (), (), options) == [
        Sub("market@crypto_latest_price", {"crypto_ids": [1, 1027]})
    ]
    with pytest.raises(ValueError, match="market@crypto_latest_price needs --ids"):
        collect("market@crypto_latest_price", (), (), NONE)
    with pytest.raises(ValueError, match="nothing to subscribe to"):
        collect(None, (), (), options)


def test_connection_failures_name_the_endpoint() -> None:
    lost = ConnectionLost("connection 0 lost: gaierror: [Errno -2] Name or service not known")
    assert describe(lost, DEFAULT_URL, connecting=True) == (
        f"cannot connect to {DEFAULT_URL}: gaierror: [Errno -2] Name or service not known"
        " (for `cmcstream serve`, pass --url ws://127.0.0.1:8765/v1 or set CMCSTREAM_URL)"
    )
    url = "ws://127.0.0.1:9/v1"
    assert describe(lost, url, connecting=False).startswith(f"connection to {url} lost: gaierror")
    refused = InvalidKey("The API key is invalid")
    assert describe(refused, url, connecting=True) == (
        f"{url} refused the key: InvalidKey: The API key is invalid"
    )


def test_figures_and_times_are_short_and_readable() -> None:
    assert [number(v) for v in (81187.93, 0.99980262, 29932025976.79, 1.2e-7, 264, True)] == [
        "81,188",
        "0.9998",
        "29.93B",
        "1.2e-07",
        "264",
        "True",
    ]
    assert clock(1778663880111) == "09:18:00"
    swap = {"pid": 14, "tx": "0x" + "1" * 64, "ts": 1, "tp": "buy", "t0s": "CAKE", "vu": 1234.5}
    assert summary(swap) == "tp=buy t0s=CAKE vu=1,234"
    wallet = {"tp": "position_time", "a": A, "spot": 1778663880111, "spct": None}
    assert summary(wallet) == "tp=position_time spot=09:18:00"
