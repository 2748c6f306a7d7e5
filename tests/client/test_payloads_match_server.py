"""The client's payload structs against the server's: same fields, same values after the wire.

Both sides spell §9's field names on their own (the client's are lenient and
generic in the number type, the server's strict); these tests keep the two in
step. Every server payload, from the spec's examples and drawn at random, is
encoded by the server's encoder and decoded by the client's decoder, on both
of its paths (one-pass and envelope-first) and in both number modes.
"""

from __future__ import annotations

import typing
from decimal import Decimal
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cmcstream.client.frames import FrameDecoder, Push
from cmcstream.client.payloads import CHANNEL_PAYLOADS, payload_type
from cmcstream.protocol import payloads as server
from cmcstream.protocol.channels import CHANNELS
from cmcstream.protocol.codec import data_prefix, encode_data
from tests.conftest import load_example, spec_dir

# The server's payload type(s) of each channel.
SERVER: dict[str, tuple[type[msgspec.Struct], ...]] = {
    "market@crypto_latest_price": (server.CryptoLatestPrice,),
    "onchain@token_agg_event": (server.TokenAggEvent,),
    "onchain@transaction": (server.Transaction,),
    "onchain@liquidity_event": (server.LiquidityEvent,),
    "onchain@kline": (server.Kline,),
    "onchain@token_metric": (server.TokenMetric,),
    "onchain@pool_metric": (server.PoolMetric,),
    "onchain@unique_trader": (server.UniqueTrader,),
    "onchain@holders_metrics": typing.get_args(server.HoldersMetric),
    "onchain@holder_wallet_update": typing.get_args(server.WalletUpdate),
}
TAGGED = {spec.name for spec in CHANNELS if "tp" in spec.variant_fields}


def test_every_channel_has_a_payload_on_both_sides() -> None:
    names = {spec.name for spec in CHANNELS}
    assert set(SERVER) == names
    assert names == CHANNEL_PAYLOADS


# -- field names ---------------------------------------------------------------------------------


def _struct_of(t: mi.Type) -> mi.StructType | None:
    """The struct a field holds, through ``None``, ``UNSET`` and list wrappers."""
    if isinstance(t, mi.StructType):
        return t
    if isinstance(t, mi.ListType):
        return _struct_of(t.item_type)
    if isinstance(t, mi.UnionType):
        found = [s for s in map(_struct_of, t.types) if s is not None]
        return found[0] if found else None
    return None


def shape(cls: Any) -> dict[str, Any]:
    """Wire field names, each with the shape of the struct it holds (or ``None``)."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    out: dict[str, Any] = {}
    if info.tag_field is not None:
        out[info.tag_field] = None
    for f in info.fields:
        nested = _struct_of(f.type)
        out[f.encode_name] = shape(nested.cls) if nested is not None else None
    return out


def variant(cls: Any) -> str | None:
    """The ``tp`` a holder payload type stands for, on either side."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    if info.tag is not None:
        return str(info.tag)
    default = next((f.default for f in info.fields if f.encode_name == "tp"), None)
    return default if isinstance(default, str) else None


def client_types(channel: str, number: type[float] | type[Decimal] = float) -> tuple[Any, ...]:
    bound = payload_type(channel, number)
    return typing.get_args(bound) if typing.get_origin(bound) is typing.Union else (bound,)


@pytest.mark.parametrize("channel", sorted(SERVER))
def test_field_names_match_per_channel_and_variant(channel: str) -> None:
    servers, clients = SERVER[channel], client_types(channel)
    if channel in TAGGED:
        by_tp = {variant(cls): cls for cls in clients}
        assert sorted(by_tp) == sorted(variant(cls) for cls in servers)
        pairs = [(cls, by_tp[variant(cls)]) for cls in servers]
    else:
        assert (len(servers), len(clients)) == (1, 1)
        pairs = [(servers[0], clients[0])]
    for server_cls, client_cls in pairs:
        assert shape(server_cls) == shape(client_cls), server_cls.__name__


# -- values through the wire ------------------------------------------------------------------


def same(sent: Any, got: Any, number: type[float] | type[Decimal], where: str = "data") -> None:
    """``got`` (client side) holds exactly what ``sent`` (server side) held."""
    if isinstance(sent, msgspec.Struct):
        assert isinstance(got, msgspec.Struct), where
        names = {f.encode_name: f.name for f in msgspec.structs.fields(got)}
        for f in msgspec.structs.fields(sent):
            value = getattr(sent, f.name)
            if f.encode_name not in names:  # the client's tag
                assert f.encode_name == "tp", where
                assert got.tp == value, where  # type: ignore[attr-defined]
                continue
            same(value, getattr(got, names[f.encode_name]), number, f"{where}.{f.encode_name}")
    elif isinstance(sent, list):
        assert isinstance(got, list), where
        assert len(got) == len(sent), where
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            same(a, b, number, f"{where}[{i}]")
    elif sent is msgspec.UNSET or sent is None:
        assert got is None, where
    elif isinstance(sent, float):
        assert type(got) is number, where
        assert float(got) == sent, where
    elif type(sent) is int and type(got) is number:
        # A whole number in a number field (``cs``): the client reads its number type,
        # as the real service may send a fraction there (a float rounds past 2**53).
        assert got == (float(sent) if number is float else sent), where
    else:
        assert type(got) is type(sent), where
        assert got == sent, where


def round_trip(channel: str, params: dict[str, Any], payload: msgspec.Struct) -> None:
    frame = encode_data(data_prefix(channel, params), payload, 1778663880111).decode()
    for number, mode in ((float, "float"), (Decimal, "decimal")):
        decoder = FrameDecoder(mode)  # type: ignore[arg-type]
        fast = decoder.data(frame, 1.0)
        env = decoder.envelope(frame)
        assert env is not None
        slow = decoder.push(env, 1.0)
        for push in (fast, slow):
            assert isinstance(push, Push)
            assert (push.channel, push.params, push.ts) == (channel, params, 1778663880111)
            kinds = tuple(typing.get_origin(t) for t in client_types(channel, number))
            assert isinstance(push.data, kinds)
            same(payload, push.data, number)


def _examples() -> list[str]:
    return sorted(p.name for p in (spec_dir() / "examples").glob("data_*.json"))


def _server_type(channel: str, data: dict[str, Any]) -> type[msgspec.Struct]:
    types = SERVER[channel]
    if channel in TAGGED:
        return next(cls for cls in types if variant(cls) == data["tp"])
    return types[0]


def test_the_examples_cover_every_channel_and_variant() -> None:
    seen = set()
    for name in _examples():
        frame = load_example(name)
        cls = _server_type(frame["channel"], frame["data"])
        seen.add((frame["channel"], cls))
    assert seen == {(channel, cls) for channel, types in SERVER.items() for cls in types}


def test_spec_examples_read_the_same_on_both_sides() -> None:
    names = _examples()
    assert len(names) >= 16
    for name in names:
        frame = load_example(name)
        channel, data = frame["channel"], frame["data"]
        payload = msgspec.convert(data, _server_type(channel, data))
        round_trip(channel, frame["params"], payload)


# -- random server payloads -------------------------------------------------------------------

_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_SCALARS: dict[type, st.SearchStrategy[Any]] = {
    mi.IntType: st.integers(-(2**63), 2**63 - 1),
    mi.FloatType: _FINITE | st.integers(-(10**6), 10**6).map(float),
    mi.StrType: st.text(max_size=12),
    mi.BoolType: st.booleans(),
    mi.NoneType: st.none(),
}


def strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Any value of a server payload field's type."""
    if type(t) in _SCALARS:
        return _SCALARS[type(t)]
    if isinstance(t, mi.UnionType):
        return st.one_of(*map(strategy, t.types))
    if isinstance(t, mi.ListType):
        return st.lists(strategy(t.item_type), max_size=4)
    if isinstance(t, mi.StructType):
        # Optional fields (``lgid``/``iix``/``pa``: UNSET, left out of the frame,
        # or a holder's fixed ``tp``) are sometimes left at their default.
        required = {f.name: strategy(f.type) for f in t.fields if f.required}
        optional = {
            f.name: strategy(f.type) for f in t.fields if not f.required and f.encode_name != "tp"
        }
        return st.fixed_dictionaries(required, optional=optional).map(lambda kw: t.cls(**kw))
    raise AssertionError(f"no strategy for {t}")


_PAYLOADS = st.one_of(
    *(
        st.tuples(st.just(channel), strategy(mi.type_info(cls)))
        for channel, types in sorted(SERVER.items())
        for cls in types
    )
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PAYLOADS)
def test_random_server_payloads_read_the_same_on_the_client(case: tuple[str, Any]) -> None:
    channel, payload = case
    round_trip(channel, {"platform_id": 14, "address": "0x" + "a" * 40}, payload)
