"""Subscriptions named on the command line: ``--sub CHANNEL:PARAMS`` and ``--subs-file``.

``--sub`` takes a channel, optionally followed by ``:`` and its params, either
as ``key=value`` pairs or as a JSON object::

    market@crypto_latest_price:crypto_ids=1,1027,825
    onchain@kline:platform_id=14,address=0xabc…,0xdef…,interval=5m
    onchain@pool_metric:{"platform_id": 16, "pool_address": ["58oQ…"]}

In the pair form, a comma followed by a word without ``=`` adds that word to
the previous key's list. Keys are the wire names (``crypto_ids``,
``platform_id``, ``address``, ``pool_address``, ``wallet_address``,
``interval``) or the option names (``ids``, ``platform``, ``pool``,
``wallet``). A param left out is taken from the selector options
(``--platform``, ``--address``, ...), so
``--sub onchain@kline --sub onchain@transaction --platform 14 --address 0x…``
watches both channels of one token.

A subscriptions file holds either a JSON list or one entry a line (blank lines
and ``#`` comments skipped). An entry is a ``--sub`` string or an object
``{"channel": ..., "params": {...}}``: the shape of a subscribe request, whose
other keys (``method``, ``id``) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from cmcstream.console.selectors import Selectors, channel_spec
from cmcstream.protocol.channels import ParamKind

__all__ = ["Sub", "collect", "parse_file", "parse_sub"]

_ALIASES = {
    "ids": "crypto_ids",
    "platform": "platform_id",
    "pool": "pool_address",
    "wallet": "wallet_address",
}


@dataclass(frozen=True, slots=True)
class Sub:
    """One subscribe request to send."""

    channel: str
    params: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.channel} {msgspec.json.encode(self.params).decode()}"


def _pairs(channel: str, text: str) -> dict[str, Any]:
    """``key=value,value,key=value`` as params typed for ``channel``."""
    spec = channel_spec(channel)
    kinds = {param.name: param.kind for param in spec.params}
    words: dict[str, list[str]] = {}
    current: list[str] | None = None
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        key, eq, value = token.partition("=")
        if not eq:
            if current is None:
                raise ValueError(f"expected key=value, got {token!r}")
            current.append(token)
            continue
        name = _ALIASES.get(key.strip(), key.strip())
        if name not in kinds:
            raise ValueError(
                f"{channel} takes no {key.strip()!r}; its params are: {', '.join(kinds)}"
            )
        current = words.setdefault(name, [])
        if value.strip():
            current.append(value.strip())
    params: dict[str, Any] = {}
    for name, values in words.items():
        kind = kinds[name]
        if not values:
            raise ValueError(f"no value for {name}")
        if kind in (ParamKind.PLATFORM, ParamKind.INTERVAL) and len(values) > 1:
            raise ValueError(f"{name} takes one value, got {', '.join(values)}")
        try:
            if kind is ParamKind.IDS:
                params[name] = [int(v) for v in values]
            elif kind is ParamKind.PLATFORM:
                params[name] = int(values[0])
            elif kind is ParamKind.INTERVAL:
                params[name] = values[0]
            else:
                params[name] = values
        except ValueError:
            raise ValueError(f"{name} takes numbers, got {', '.join(values)}") from None
    return params


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("params must be a JSON object")
    return value


def parse_sub(text: str, selectors: Selectors) -> Sub:
    """One ``--sub`` value.

    Raises:
        ValueError: what is wrong with it.
    """
    channel, _, rest = text.strip().partition(":")
    channel = channel.strip()
    channel_spec(channel)
    rest = rest.strip()
    given = _json_object(rest) if rest.startswith("{") else _pairs(channel, rest)
    return Sub(channel, selectors.params(channel, given))


def _entry(value: Any, selectors: Selectors) -> Sub:
    if isinstance(value, str):
        return parse_sub(value, selectors)
    if not isinstance(value, dict):
        raise ValueError('expected a --sub string or {"channel": ..., "params": {...}}')
    channel = value.get("channel")
    params = value.get("params", {})
    if not isinstance(channel, str):
        raise ValueError('an entry needs "channel"')
    if not isinstance(params, dict):
        raise ValueError('"params" must be a JSON object')
    return Sub(channel, selectors.params(channel, params))


def parse_file(text: str, source: str, selectors: Selectors) -> list[Sub]:
    """The subscriptions of a ``--subs-file`` (``source`` names it in errors).

    Raises:
        ValueError: what is wrong, with the line or entry it is on.
    """
    if text.lstrip().startswith("["):
        try:
            entries = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc}") from None
        subs = []
        for number, entry in enumerate(entries, start=1):
            try:
                subs.append(_entry(entry, selectors))
            except ValueError as exc:
                raise ValueError(f"{source}: entry {number}: {exc}") from None
        return subs
    subs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            subs.append(_entry(_json_object(line) if line.startswith("{") else line, selectors))
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: {exc}") from None
    return subs


def collect(
    channel: str | None,
    subs: Iterable[str],
    files: Iterable[tuple[str, str]],
    selectors: Selectors,
) -> list[Sub]:
    """Every subscription a command names: the CHANNEL argument (with the selector
    options), each ``--sub``, then each file given as (name, text).

    Raises:
        ValueError: one of them is wrong, or none is named.
    """
    found = [] if channel is None else [Sub(channel, selectors.params(channel))]
    for text in subs:
        try:
            found.append(parse_sub(text, selectors))
        except ValueError as exc:
            raise ValueError(f"--sub {text!r}: {exc}") from None
    for name, text in files:
        found.extend(parse_file(text, name, selectors))
    if not found:
        raise ValueError("nothing to subscribe to: name a CHANNEL, --sub or --subs-file")
    return found
