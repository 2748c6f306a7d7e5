"""No input escapes the protocol core as anything but a documented answer.

Arbitrary bytes, arbitrary JSON and deeply nested JSON go through the session
at whatever stack depth the caller has: each frame gets effects made of acks,
pongs, subscription changes and error frames with documented codes, and never
an exception.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cmcstream.protocol import codec
from cmcstream.protocol.channels import CHANNELS, ChannelRegistry
from cmcstream.protocol.codes import ERRORS
from cmcstream.protocol.messages import Error
from cmcstream.protocol.session import Reply, Session, Subscribe, Unsubscribe

NOW = 1_779_324_429_125
DOCUMENTED = {spec.wire_code for spec in ERRORS.values()}
REG = ChannelRegistry()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "method": st.sampled_from(["subscribe", "unsubscribe", "unsubscribe_all", "ping"])
        | json_values,
        "channel": st.sampled_from([c.name for c in CHANNELS]) | json_values,
        "params": st.fixed_dictionaries(
            {},
            optional={
                "crypto_ids": json_values,
                "platform_id": st.sampled_from([1, 14, 16, 199]) | json_values,
                "address": json_values,
                "pool_address": json_values,
                "wallet_address": json_values,
                "interval": st.sampled_from(["1m", "1h"]) | json_values,
            },
        )
        | json_values,
    },
)


def at_depth(depth: int, call: Callable[[], Any]) -> Any:
    """Run ``call`` with ``depth`` frames already on the stack (as a server task has)."""
    if depth:
        return at_depth(depth - 1, call)
    return call()


def check(session: Session, frame: str | bytes, depth: int = 0) -> None:
    effects = at_depth(depth, lambda: session.receive_text(frame, NOW))
    assert effects
    for effect in effects:
        assert isinstance(effect, Reply | Subscribe | Unsubscribe)
        if isinstance(effect, Reply) and isinstance(effect.message, Error):
            assert effect.message.status.error_code in DOCUMENTED
            json.loads(codec.encode(effect.message))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_get_a_documented_answer(frame: bytes | str) -> None:
    check(Session(REG), frame or " ")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_any_json_request_gets_a_documented_answer(request: dict[str, Any]) -> None:
    check(Session(REG, sub_limit=5), json.dumps(request))


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(1, 3000),
    stack=st.integers(0, 900),
    where=st.sampled_from(["top", "params", "list"]),
    opener=st.sampled_from(["[", '{"a":']),
)
def test_deep_nesting_is_2201_or_2402_at_any_stack_depth(
    depth: int, stack: int, where: str, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    frame = {
        "top": '{"id":1,"method":"ping","x":' + nested + "}",
        "params": '{"id":1,"method":"subscribe","channel":"market@crypto_latest_price",'
        '"params":{"crypto_ids":' + nested + "}}",
        "list": '{"id":1,"method":"ping","x":[' + nested + "]}",
    }[where]
    stack = min(stack, sys.getrecursionlimit() - 100)
    check(Session(REG), frame, stack)


def test_nesting_past_the_limit_is_refused_whatever_the_recursion_limit() -> None:
    from cmcstream.protocol.codec import MAX_DEPTH, RequestError, decode_request

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # as a library may; msgspec would then follow it
    try:
        for opener, closer in (("[", "]"), ('{"a":', "}")):
            at_limit = '{"id":1,"method":"ping","x":' + opener * (MAX_DEPTH - 1)
            at_limit += "1" + closer * (MAX_DEPTH - 1) + "}"
            assert decode_request(at_limit).method == "ping"
            assert decode_request(at_limit.encode()).method == "ping"
            deep = '{"id":1,"method":"ping","x":' + opener * 5000 + "1" + closer * 5000 + "}"
            for frame in (deep, deep.encode()):
                with pytest.raises(RequestError, match="nests too deeply"):
                    decode_request(frame)
        # Many brackets side by side are not depth.
        wide = '{"id":1,"method":"ping","x":[' + ",".join(["[]"] * 500) + "]}"
        assert decode_request(wide).method == "ping"
        assert decode_request(wide.encode()).method == "ping"
    finally:
        sys.setrecursionlimit(limit)
