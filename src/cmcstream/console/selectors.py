"""Command-line selectors (``--ids``, ``--address``, ...) turned into subscribe params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmcstream.protocol.channels import CHANNELS, ParamKind

__all__ = ["Selectors"]

_SPECS = {spec.name: spec for spec in CHANNELS}


def _words(values: tuple[str, ...]) -> list[str]:
    # Accept both repeated options and comma-separated lists.
    return [word.strip() for value in values for word in value.split(",") if word.strip()]


@dataclass(frozen=True, slots=True)
class Selectors:
    """What the user named on the command line."""

    ids: tuple[str, ...] = ()
    platform: int | None = None
    address: tuple[str, ...] = ()
    interval: str | None = None
    pool: tuple[str, ...] = ()
    wallet: tuple[str, ...] = ()

    def params(self, channel: str) -> dict[str, Any]:
        """The subscribe params for ``channel``.

        Raises:
            ValueError: a selector the channel needs is missing, or ``--ids``
                holds something that is not a number.
        """
        spec = _SPECS.get(channel)
        if spec is None:
            known = ", ".join(_SPECS)
            raise ValueError(f"unknown channel {channel!r}; the channels are: {known}")
        params: dict[str, Any] = {}
        for param in spec.params:
            value: Any
            if param.kind is ParamKind.IDS:
                try:
                    value = [int(word) for word in _words(self.ids)]
                except ValueError:
                    raise ValueError("--ids takes numbers, e.g. --ids 1,1027") from None
                flag = "--ids"
            elif param.kind is ParamKind.PLATFORM:
                value, flag = self.platform, "--platform"
            elif param.kind is ParamKind.INTERVAL:
                value, flag = self.interval or "1m", "--interval"
            else:
                source, flag = {
                    "address": (self.address, "--address"),
                    "pool_address": (self.pool, "--pool"),
                    "wallet_address": (self.wallet, "--wallet"),
                }[param.name]
                value = _words(source)
            if value is None or value == []:
                raise ValueError(f"{channel} needs {flag}")
            params[param.name] = value
        return params
