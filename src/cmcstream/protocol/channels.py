"""The ten channels: their params, how params are normalized, and subscription identities.

PROTOCOL.md §6 and §9. A subscribe request names a channel and params whose
list-valued param (``crypto_ids``, ``address``, ``pool_address`` or
``wallet_address``) may hold several items; it stands for one
:class:`Subscription` per item. A subscription's ``topic`` is its canonical
identity (channel plus one scalar per param, joined by ``|``), and its
``params`` are what every push of it echoes.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cmcstream.protocol.codec import RequestError
from cmcstream.protocol.codes import ErrorCode
from cmcstream.protocol.platforms import AddressKind, Platform, PlatformTable

__all__ = [
    "CHANNELS",
    "DEDUPED_CHANNELS",
    "KLINE_INTERVALS",
    "LATEST_VALUE_CHANNELS",
    "UNIQUE_TRADER_INTERVALS",
    "ChannelRegistry",
    "ChannelSpec",
    "ParamKind",
    "ParamSpec",
    "Selection",
    "Subscription",
    "make_topic",
]

KLINE_INTERVALS: Final = ("1s", "5s", "30s", "1m", "3m", "5m", "15m", "30m")
# Q4: the documented eight plus the "up to 1d" the token page promises.
UNIQUE_TRADER_INTERVALS: Final = (*KLINE_INTERVALS, "1h", "4h", "1d")


class ParamKind(enum.Enum):
    IDS = "ids"  # positive integers, list or scalar
    PLATFORM = "platform"  # one integer platform id
    ADDRESSES = "addresses"  # strings, list or scalar, validated by the platform's kind
    INTERVAL = "interval"  # one string from an enum, case-sensitive


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    kind: ParamKind
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel.

    Attributes:
        name: the wire name, e.g. ``onchain@kline``.
        params: every param, all required, in the documented order (which is
            also the identity order and the order 2401 reports the first
            missing one in).
        holders_only: limited to the platforms that support holder data (§8).
        latest_value: every push is a snapshot: a newer push of the same
            identity (and the same ``variant_fields`` values) supersedes an
            older one, so a slow reader may skip to the newest. Event channels
            (swaps, liquidity events, closed candles and intervals) are not.
        variant_fields: payload fields that, beside the identity, tell which
            older push a newer one supersedes: a holder channel pushes several
            variants (``tp``) per identity, and a wallet one per token (``a``).
        deduped: one event can arrive twice (once per subscribed token of its
            pool, §8); its identity is ``pid``, ``tx`` and the log index
            (``lgid`` on EVM chains, ``iix`` on Solana, §14).
    """

    name: str
    params: tuple[ParamSpec, ...]
    holders_only: bool = False
    latest_value: bool = False
    variant_fields: tuple[str, ...] = ()
    deduped: bool = False

    @property
    def onchain(self) -> bool:
        return self.name.startswith("onchain@")

    @property
    def list_param(self) -> str | None:
        """The param that may hold several items (one subscription each), if any."""
        return next(
            (p.name for p in self.params if p.kind in (ParamKind.IDS, ParamKind.ADDRESSES)),
            None,
        )

    @property
    def collapsible(self) -> bool:
        """Whether the newest push of a topic supersedes every older one of it whole.

        True for latest-value channels without variants: a server may then
        send a slow reader only the newest push per topic.
        """
        return self.latest_value and not self.variant_fields


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Subscription:
    """One subscription identity (§6.2).

    The registry hands out one shared instance per topic while any connection
    holds it, so ten thousand connections on the same hundred ids hold a
    hundred of these, not a million.
    """

    topic: str
    channel: str
    params: Mapping[str, int | str] = field(hash=False, compare=False)


def make_topic(channel: str, *values: int | str) -> str:
    """The canonical topic of an identity: ``channel|value|value…``."""
    return "|".join((channel, *map(str, values)))


class Selection:
    """The identities one request names: validated values per param, not yet built.

    Attributes:
        spec: the channel.
        values: per param in documented order, its normalized values.
        size: how many identities the request names.
    """

    __slots__ = ("_interned", "_sets", "size", "spec", "values")

    def __init__(
        self,
        spec: ChannelSpec,
        values: tuple[tuple[int | str, ...], ...],
        interned: weakref.WeakValueDictionary[str, Subscription],
    ) -> None:
        self.spec = spec
        self.values = values
        self._interned = interned
        self._sets: tuple[frozenset[int | str], ...] | None = None
        self.size = math.prod(map(len, values))

    def topics(self) -> Iterator[str]:
        """The topic of every identity, in canonical order."""
        name = self.spec.name
        return (make_topic(name, *combo) for combo in itertools.product(*self.values))

    def matches(self, sub: Subscription) -> bool:
        """Whether ``sub`` is one of the identities named."""
        if self._sets is None:
            self._sets = tuple(map(frozenset, self.values))
        return sub.channel == self.spec.name and all(
            sub.params[param.name] in values
            for param, values in zip(self.spec.params, self._sets, strict=True)
        )

    def subscriptions(self) -> list[Subscription]:
        """One shared :class:`Subscription` per identity (interned while any holds it)."""
        names = [p.name for p in self.spec.params]
        subscriptions = []
        interned = self._interned
        for combo in itertools.product(*self.values):
            topic = make_topic(self.spec.name, *combo)
            sub = interned.get(topic)
            if sub is None:
                sub = interned[topic] = Subscription(
                    topic, self.spec.name, dict(zip(names, combo, strict=True))
                )
            subscriptions.append(sub)
        return subscriptions


_PLATFORM = ParamSpec("platform_id", ParamKind.PLATFORM)
_ADDRESS = ParamSpec("address", ParamKind.ADDRESSES)


def _token_channel(name: str, **traits: Any) -> ChannelSpec:
    return ChannelSpec(name, (_PLATFORM, _ADDRESS), **traits)


CHANNELS: Final[tuple[ChannelSpec, ...]] = (
    ChannelSpec(
        "market@crypto_latest_price",
        (ParamSpec("crypto_ids", ParamKind.IDS),),
        latest_value=True,
    ),
    # The token's aggregated price and liquidity as of its latest swap (§9.2).
    _token_channel("onchain@token_agg_event", latest_value=True),
    _token_channel("onchain@transaction", deduped=True),
    _token_channel("onchain@liquidity_event", deduped=True),
    ChannelSpec(
        "onchain@kline",
        (_PLATFORM, _ADDRESS, ParamSpec("interval", ParamKind.INTERVAL, KLINE_INTERVALS)),
    ),
    _token_channel("onchain@token_metric", latest_value=True),
    ChannelSpec(
        "onchain@pool_metric",
        (_PLATFORM, ParamSpec("pool_address", ParamKind.ADDRESSES)),
        latest_value=True,
    ),
    ChannelSpec(
        "onchain@unique_trader",
        (_PLATFORM, _ADDRESS, ParamSpec("interval", ParamKind.INTERVAL, UNIQUE_TRADER_INTERVALS)),
    ),
    _token_channel(
        "onchain@holders_metrics", holders_only=True, latest_value=True, variant_fields=("tp",)
    ),
    ChannelSpec(
        "onchain@holder_wallet_update",
        (_PLATFORM, ParamSpec("wallet_address", ParamKind.ADDRESSES)),
        holders_only=True,
        latest_value=True,
        variant_fields=("tp", "a"),
    ),
)

LATEST_VALUE_CHANNELS: Final = frozenset(spec.name for spec in CHANNELS if spec.latest_value)
DEDUPED_CHANNELS: Final = frozenset(spec.name for spec in CHANNELS if spec.deduped)

_EVM = re.compile(r"0x[0-9a-fA-F]{40}")
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")


def _invalid(detail: str) -> RequestError:
    return RequestError(ErrorCode.INVALID_PARAM, detail)


class ChannelRegistry:
    """Channel lookup and params normalization (§6.1)."""

    def __init__(
        self,
        channels: tuple[ChannelSpec, ...] = CHANNELS,
        platforms: PlatformTable | None = None,
    ) -> None:
        self._channels = {spec.name: spec for spec in channels}
        self.platforms = platforms if platforms is not None else PlatformTable()
        self._interned: weakref.WeakValueDictionary[str, Subscription] = (
            weakref.WeakValueDictionary()
        )

    def get(self, name: str) -> ChannelSpec | None:
        return self._channels.get(name)

    def __iter__(self) -> Iterator[ChannelSpec]:
        return iter(self._channels.values())

    def normalize(self, spec: ChannelSpec, params: Mapping[str, Any]) -> list[Subscription]:
        """Turn request params into the subscriptions they stand for.

        Raises:
            RequestError: as :meth:`select`.
        """
        return self.select(spec, params).subscriptions()

    def subscription_of(self, topic: str) -> Subscription | None:
        """The identity a topic stands for (what a producer is told to work for).

        Returns None for a string that is not a topic of a known channel.
        """
        sub = self._interned.get(topic)
        if sub is not None:
            return sub
        name, *values = topic.split("|")
        spec = self._channels.get(name)
        if spec is None or len(values) != len(spec.params):
            return None
        params: dict[str, int | str] = {}
        for param, value in zip(spec.params, values, strict=True):
            if param.kind in (ParamKind.IDS, ParamKind.PLATFORM):
                if not value.isdigit():
                    return None
                params[param.name] = int(value)
            else:
                params[param.name] = value
        if make_topic(name, *params.values()) != topic:
            return None  # not canonical (e.g. "01"): no subscriber can hold it
        sub = self._interned[topic] = Subscription(topic, name, params)
        return sub

    def subscription_of_push(self, channel: str, params: Mapping[str, Any]) -> Subscription | None:
        """The identity a push belongs to, from its ``channel`` and ``params``.

        Returns None when they do not name one identity of a known channel.
        """
        spec = self._channels.get(channel)
        if spec is None or len(params) != len(spec.params):
            return None
        values: list[int | str] = []
        for param in spec.params:
            value = params.get(param.name)
            if isinstance(value, bool) or not isinstance(value, int | str):
                return None
            values.append(value)
        return self.subscription_of(make_topic(channel, *values))

    def select(self, spec: ChannelSpec, params: Mapping[str, Any]) -> Selection:
        """Validate request params into the :class:`Selection` of identities they name.

        Lists and scalars are both accepted; list items are deduplicated and
        ordered; EVM addresses are lower-cased; unknown keys are ignored (Q17).
        Nothing per identity is built here, so a request naming thousands of
        items costs one pass over them before its size is known.

        Raises:
            RequestError: 2401 for the first missing param in documented
                order (a JSON ``null`` counts as missing), 2402 for a
                malformed one.
        """
        for param in spec.params:
            if params.get(param.name) is None:
                raise RequestError(
                    ErrorCode.MISSING_PARAM,
                    f"Param '{param.name}' is required for channel '{spec.name}'.",
                )
        platform: Platform | None = None
        values: list[tuple[int | str, ...]] = []
        for param in spec.params:
            raw = params[param.name]
            if param.kind is ParamKind.PLATFORM:
                platform = self._platform(spec, raw)
                values.append((platform.id,))
            elif param.kind is ParamKind.IDS:
                values.append(tuple(self._ids(spec, param, raw)))
            elif param.kind is ParamKind.ADDRESSES:
                assert platform is not None  # platform_id precedes addresses in every spec
                values.append(tuple(self._addresses(spec, param, raw, platform)))
            else:
                if not isinstance(raw, str) or raw not in param.choices:
                    raise _invalid(
                        f"Param '{param.name}' must be one of [{', '.join(param.choices)}] "
                        f"for channel '{spec.name}'."
                    )
                values.append((raw,))
        return Selection(spec, tuple(values), self._interned)

    def _platform(self, spec: ChannelSpec, raw: Any) -> Platform:
        if type(raw) is not int:  # bool is an int subclass; "14" and 14.0 are rejected too
            raise _invalid(f"Param 'platform_id' must be an integer for channel '{spec.name}'.")
        platform = self.platforms.get(raw)
        if platform is None:
            raise _invalid(f"Platform {raw} is not supported for channel '{spec.name}'.")
        if spec.holders_only and not platform.holders:
            raise _invalid(
                f"Channel '{spec.name}' is not available on platform {raw} ({platform.name})."
            )
        return platform

    @staticmethod
    def _items(spec: ChannelSpec, param: ParamSpec, raw: Any) -> list[Any]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise _invalid(f"Param '{param.name}' must not be empty for channel '{spec.name}'.")
        return items

    def _ids(self, spec: ChannelSpec, param: ParamSpec, raw: Any) -> list[int]:
        ids: set[int] = set()
        for item in self._items(spec, param, raw):
            if type(item) is not int or item <= 0:
                raise _invalid(
                    f"Param '{param.name}' must hold positive integers for channel '{spec.name}'."
                )
            ids.add(item)
        return sorted(ids)

    def _addresses(
        self, spec: ChannelSpec, param: ParamSpec, raw: Any, platform: Platform
    ) -> list[str]:
        found: set[str] = set()
        for item in self._items(spec, param, raw):
            if not isinstance(item, str) or not _valid_address(item, platform.kind):
                raise _invalid(
                    f"Param '{param.name}' holds an invalid {platform.name} address "
                    f"for channel '{spec.name}'."
                )
            found.add(item.lower() if platform.kind is AddressKind.EVM else item)
        return sorted(found)


def _valid_address(address: str, kind: AddressKind) -> bool:
    if kind is AddressKind.EVM:
        return _EVM.fullmatch(address) is not None
    if kind is AddressKind.SOLANA:
        return 32 <= len(address) <= 44 and _BASE58.fullmatch(address) is not None
    if kind is AddressKind.TRON:
        return len(address) == 34 and address[0] == "T" and _BASE58.fullmatch(address) is not None
    return _TOKEN.fullmatch(address) is not None
