"""Subscription items: what one subscribe request stands for, one identity at a time.

A request such as ``{"crypto_ids": [1, 1027]}`` is two subscriptions (PROTOCOL.md
§6.2, per-item counting). The client splits requests into items to count them
against the per-connection limit, to spread them over connections, and to send
them again after a reconnect. It validates nothing beyond that: the server is
the judge of params, and answers a bad one with an ``error`` frame.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cmcstream.protocol.channels import CHANNELS

__all__ = ["Item", "buckets", "group", "request_of", "split"]

# The list-valued param of each channel; unknown channels fall back to any of these names.
_LIST_PARAM: dict[str, str] = {
    spec.name: spec.list_param for spec in CHANNELS if spec.list_param is not None
}
_LIST_NAMES = frozenset(_LIST_PARAM.values())
_EVM = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class Item:
    """One subscription identity: a channel, its scalar params and one list item.

    Attributes:
        channel: the wire name.
        scalars: the other params, sorted by name (e.g. ``platform_id``, ``interval``).
        list_param: the name of the list-valued param, or ``None`` when absent.
        value: the one item of that param.
    """

    channel: str
    scalars: tuple[tuple[str, Any], ...]
    list_param: str | None
    value: Any

    def params(self) -> dict[str, Any]:
        """The params of this one subscription, as a push echoes them."""
        out = dict(self.scalars)
        if self.list_param is not None:
            out[self.list_param] = self.value
        return out


def _normal(value: Any) -> Any:
    # Lower-case EVM addresses as the server does (§6.1), so the same token
    # written twice counts once; everything else is kept as given.
    if isinstance(value, str) and _EVM.fullmatch(value):
        return value.lower()
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def split(channel: str, params: dict[str, Any] | None) -> list[Item]:
    """The items a subscribe or unsubscribe request stands for, deduplicated, in request order."""
    params = dict(params or {})
    name = _LIST_PARAM.get(channel)
    if name is None:
        name = next((key for key in params if key in _LIST_NAMES), None)
    raw = params.pop(name, None) if name is not None else None
    scalars = tuple(sorted((key, _hashable(value)) for key, value in params.items()))
    if raw is None:
        return [Item(channel, scalars, None, None)]
    values = raw if isinstance(raw, list) else [raw]
    seen: dict[Any, None] = {}
    for value in values:
        seen.setdefault(_normal(_hashable(value)), None)
    return [Item(channel, scalars, name, value) for value in seen]


def buckets(items: list[Item]) -> list[list[Item]]:
    """``items`` in groups that one request can carry: same channel and scalar params."""
    found: dict[tuple[str, tuple[tuple[str, Any], ...], str | None], list[Item]] = defaultdict(list)
    for item in items:
        found[item.channel, item.scalars, item.list_param].append(item)
    return list(found.values())


def request_of(members: list[Item]) -> tuple[str, dict[str, Any]]:
    """The (channel, params) of one bucket: every member's value in the list param."""
    first = members[0]
    params = dict(first.scalars)
    if first.list_param is not None:
        params[first.list_param] = [item.value for item in members]
    return first.channel, params


def group(items: list[Item]) -> list[tuple[str, dict[str, Any]]]:
    """Requests (channel, params) that subscribe exactly ``items``, one per channel and scalars."""
    return [request_of(members) for members in buckets(items)]
