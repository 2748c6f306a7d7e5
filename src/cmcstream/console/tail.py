"""``cmcstream tail``: watch a channel live, as a table for people or JSON lines for pipes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cmcstream.client import Push, Stream

__all__ = ["tail"]

_encode = msgspec.json.Encoder().encode
_REFRESH_S = 0.25
_MAX_FIELDS = 7


@dataclass(slots=True)
class _Row:
    count: int = 0
    last: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


def _identity(params: dict[str, Any]) -> str:
    return " ".join(f"{value}" for key, value in params.items() if key != "platform_id")


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-4 <= abs(value) < 1e15:
            return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def _summary(data: dict[str, Any]) -> str:
    """The first scalar fields of a payload, compactly."""
    parts = []
    for key, value in data.items():
        if isinstance(value, dict | list) or key in ("pid", "a", "wa", "cid", "pa"):
            continue
        parts.append(f"{key}={_number(value)}")
        if len(parts) == _MAX_FIELDS:
            break
    return "  ".join(parts)


class _Board:
    """One row per subscription (and per ``tp`` variant), redrawn in place."""

    def __init__(self, stream: Stream, channel: str) -> None:
        self._stream = stream
        self._channel = channel
        self._rows: dict[tuple[str, str], _Row] = {}
        self._started = time.monotonic()

    def update(self, push: Push[Any]) -> None:
        data = push.data if isinstance(push.data, dict) else {}
        key = (_identity(push.params), str(data.get("tp", "")))
        row = self._rows.setdefault(key, _Row())
        row.count += 1
        row.last = time.monotonic()
        row.data = data

    def render(self) -> Table:
        stats = self._stream.stats()
        now = time.monotonic()
        table = Table(
            title=f"{self._channel}  ·  {self._stream.url}",
            caption=(
                f"{self._stream.state.value} · {stats['received']} pushes in "
                f"{now - self._started:.0f} s · {stats['duplicates']} duplicates dropped · "
                f"{stats['outages']} outages · Ctrl-C to quit"
            ),
            expand=True,
        )
        variants = any(tp for _, tp in self._rows)  # only the holder channels have them
        table.add_column("subscription", no_wrap=True)
        if variants:
            table.add_column("tp", no_wrap=True)
        table.add_column("pushes", justify="right")
        table.add_column("age", justify="right")
        table.add_column("latest")
        for (ident, tp), row in sorted(self._rows.items()):
            cells = [ident, tp] if variants else [ident]
            cells += [str(row.count), f"{now - row.last:.1f}s", _summary(row.data)]
            table.add_row(*cells)
        return table


async def tail(
    url: str,
    api_key: str,
    channel: str,
    params: dict[str, Any],
    *,
    as_json: bool,
    count: int | None,
    duration: float | None,
) -> int:
    """Stream until ``count`` pushes, ``duration`` seconds or Ctrl-C; returns the pushes seen."""
    deadline = None if duration is None else time.monotonic() + duration
    seen = 0
    async with Stream(api_key, url, raw=True) as stream:
        await stream.subscribe(channel, params)
        board = None if as_json else _Board(stream, channel)
        live = None
        if board is not None:
            live = Live(board.render(), console=Console(), auto_refresh=False, transient=False)
            live.start()
        drawn = 0.0
        try:
            while count is None or seen < count:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                try:
                    push = await stream.recv(
                        timeout=_REFRESH_S if left is None else min(left, _REFRESH_S)
                    )
                except TimeoutError:
                    push = None
                if push is not None:
                    seen += 1
                    if board is None:
                        sys.stdout.write(
                            _encode(
                                {
                                    "channel": push.channel,
                                    "params": push.params,
                                    "data": push.data,
                                    "ts": push.ts,
                                }
                            ).decode()
                            + "\n"
                        )
                        sys.stdout.flush()
                    else:
                        board.update(push)
                if (
                    live is not None
                    and board is not None
                    and time.monotonic() - drawn >= _REFRESH_S
                ):
                    live.update(board.render(), refresh=True)
                    drawn = time.monotonic()
        finally:
            if live is not None and board is not None:
                live.update(board.render(), refresh=True)
                live.stop()
    return seen
