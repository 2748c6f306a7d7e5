"""Channel traits the client acts on: as the protocol defines them, and as the client uses them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cmcstream.client.buffer import Overflow, PushBuffer
from cmcstream.client.frames import FrameDecoder, Push
from cmcstream.client.items import split
from cmcstream.protocol.channels import CHANNELS
from cmcstream.protocol.handshake import API_KEY_HEADER

SPECS = {spec.name: spec for spec in CHANNELS}


def test_the_key_header_is_the_specs(channels_json: Any) -> None:
    assert channels_json["auth"]["header"] == API_KEY_HEADER


@pytest.mark.parametrize("spec", CHANNELS, ids=lambda s: s.name)
def test_requests_split_on_each_channels_list_param(spec: Any) -> None:
    params: dict[str, Any] = {"platform_id": 14, "interval": "1m"}
    params[spec.list_param] = ["x", "y", "x"]
    items = split(spec.name, params)
    assert [(i.list_param, i.value) for i in items] == [
        (spec.list_param, "x"),
        (spec.list_param, "y"),
    ]


WALLET = "0x" + "1" * 40
DECODER = FrameDecoder()


def wallet_push(tp: str, token: str | None, balance: float) -> Push[Any]:
    data: dict[str, Any] = {"pid": 14, "wa": WALLET, "tp": tp, "ts": 1, "b": balance}
    if token is not None:
        data["a"] = token
    raw = DECODER.payload("onchain@holder_wallet_update", json.dumps(data).encode())
    return Push("onchain@holder_wallet_update", {"platform_id": 14, "wallet_address": WALLET}, raw)


async def test_latest_policy_keeps_a_wallets_tokens_and_variants_apart() -> None:
    buffer = PushBuffer(capacity=3, overflow=Overflow.LATEST)
    await buffer.put(wallet_push("token_balance", "0xaa", 1.0))
    await buffer.put(wallet_push("token_balance", "0xbb", 1.0))
    await buffer.put(wallet_push("native_balance", None, 1.0))
    # Full: each replaces the queued push of its own token or variant only.
    await buffer.put(wallet_push("token_balance", "0xbb", 2.0))
    await buffer.put(wallet_push("native_balance", None, 2.0))
    await buffer.put(wallet_push("token_balance", "0xaa", 3.0))
    assert buffer.dropped["onchain@holder_wallet_update"] == 3
    got = [buffer.get_nowait() for _ in range(3)]
    assert [(p.data.tp, getattr(p.data, "a", None), p.data.b) for p in got if p is not None] == [
        ("token_balance", "0xaa", 3.0),
        ("token_balance", "0xbb", 2.0),
        ("native_balance", None, 2.0),
    ]
