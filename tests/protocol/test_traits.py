"""Channel traits as the protocol defines them (the client and the gateway act on them)."""

from __future__ import annotations

from typing import Any

from cmcstream.protocol.channels import CHANNELS, DEDUPED_CHANNELS, LATEST_VALUE_CHANNELS
from cmcstream.protocol.handshake import API_KEY_HEADER

SPECS = {spec.name: spec for spec in CHANNELS}


def test_latest_value_and_deduped_channels() -> None:
    # Snapshots: a newer push of an identity supersedes an older one.
    assert {
        "market@crypto_latest_price",
        "onchain@token_agg_event",
        "onchain@token_metric",
        "onchain@pool_metric",
        "onchain@holders_metrics",
        "onchain@holder_wallet_update",
    } == LATEST_VALUE_CHANNELS
    # Events that can arrive twice (once per subscribed token of the pool).
    assert {"onchain@transaction", "onchain@liquidity_event"} == DEDUPED_CHANNELS
    assert not LATEST_VALUE_CHANNELS & DEDUPED_CHANNELS
    assert SPECS["onchain@holders_metrics"].variant_fields == ("tp",)
    assert SPECS["onchain@holder_wallet_update"].variant_fields == ("tp", "a")
    # A server may collapse a slow reader's queue per topic only where a push
    # supersedes every older one of its topic: not across holder variants.
    assert {s.name for s in CHANNELS if s.collapsible} == LATEST_VALUE_CHANNELS - {
        "onchain@holders_metrics",
        "onchain@holder_wallet_update",
    }


def test_list_params_are_the_specs_array_params(channels_json: Any) -> None:
    documented = channels_json["channels"]
    assert set(documented) == set(SPECS)
    for name, spec in SPECS.items():
        arrays = [
            p["name"] for p in documented[name]["subscribe_params"] if p["type"].endswith("[]")
        ]
        assert [spec.list_param] == arrays, name


def test_the_key_header_is_the_documented_one() -> None:
    assert API_KEY_HEADER == "X-CMC_PRO_API_KEY"  # §2
