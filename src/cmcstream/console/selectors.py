"""Command-line selectors (``--ids``, ``--address``, ...) turned into subscribe params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmcstream.protocol.channels import CHANNELS, ChannelSpec, ParamKind, ParamSpec

__all__ = ["SPECS", "Selectors", "channel_spec", "flag_of"]

SPECS = {spec.name: spec for spec in CHANNELS}

_ADDRESS_FLAGS = {"address": "--address", "pool_address": "--pool", "wallet_address": "--wallet"}


def channel_spec(channel: str) -> ChannelSpec:
    """The channel named ``channel``.

    Raises:
        ValueError: no such channel (the message lists them).
    """
    spec = SPECS.get(channel)
    if spec is None:
        known = ", ".join(SPECS)
        raise ValueError(f"unknown channel {channel!r}; the channels are: {known}")
    return spec


def flag_of(param: ParamSpec) -> str:
    """The command-line option that supplies ``param``."""
    if param.kind is ParamKind.IDS:
        return "--ids"
    if param.kind is ParamKind.PLATFORM:
        return "--platform"
    if param.kind is ParamKind.INTERVAL:
        return "--interval"
    return _ADDRESS_FLAGS[param.name]


def _words(values: tuple[str, ...]) -> list[str]:
    # Accept both repeated options and comma-separated lists.
    return [word.strip() for value in values for word in value.split(",") if word.strip()]


@dataclass(frozen=True, slots=True)
class Selectors:
    """What the user named on the command line with the selector options."""

    ids: tuple[str, ...] = ()
    platform: int | None = None
    address: tuple[str, ...] = ()
    interval: str | None = None
    pool: tuple[str, ...] = ()
    wallet: tuple[str, ...] = ()

    def value(self, param: ParamSpec) -> Any:
        """What the options say for ``param``; ``None`` when they say nothing.

        Raises:
            ValueError: ``--ids`` holds something that is not a number.
        """
        if param.kind is ParamKind.IDS:
            try:
                return [int(word) for word in _words(self.ids)] or None
            except ValueError:
                raise ValueError("--ids takes numbers, e.g. --ids 1,1027") from None
        if param.kind is ParamKind.PLATFORM:
            return self.platform
        if param.kind is ParamKind.INTERVAL:
            return self.interval or "1m"
        source = {"address": self.address, "pool_address": self.pool, "wallet_address": self.wallet}
        return _words(source[param.name]) or None

    def params(self, channel: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """The subscribe params for ``channel``: ``given`` ones first, the options for the rest.

        Raises:
            ValueError: an unknown channel, a param that neither ``given`` nor
                the options supply, or ``--ids`` that are not numbers.
        """
        spec = channel_spec(channel)
        params = dict(given or {})
        for param in spec.params:
            if params.get(param.name) is not None:
                continue
            value = self.value(param)
            if value is None:
                if given is None:
                    raise ValueError(f"{channel} needs {flag_of(param)}")
                raise ValueError(f"{channel} needs {param.name}=… (or {flag_of(param)})")
            params[param.name] = value
        return params
