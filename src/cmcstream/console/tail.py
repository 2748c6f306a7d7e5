"""``cmcstream tail``: watch subscriptions live, as a table for people or JSON lines for pipes."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cmcstream.client import DEFAULT_URL, Push, Stream
from cmcstream.console.names import SymbolBook, short_address, simulator_of
from cmcstream.console.selectors import SPECS
from cmcstream.console.session import Stopper, open_stream
from cmcstream.console.subscriptions import Sub

__all__ = ["Board", "tail"]

_encode = msgspec.json.Encoder().encode
_REFRESH_S = 0.25
_MAX_FIELDS = 8
_ORDER = {name: index for index, name in enumerate(SPECS)}
# Channel names without their family, shortened where they would crowd an 80-column table.
_SHORT = {
    "market@crypto_latest_price": "price",
    "onchain@holders_metrics": "holders",
    "onchain@holder_wallet_update": "wallet",
}
# Fields the subject and time columns already show, and identifiers too long to read.
_SKIPPED = frozenset(
    {"pid", "cid", "a", "wa", "pa", "ts", "ot", "tx", "t0a", "t1a", "f", "ma", "ba", "bh"}
)
# The holder channels' payloads come in variants (``tp``), each worth a row of its own.
_VARIANTS = frozenset({"onchain@holders_metrics", "onchain@holder_wallet_update"})
_ADDRESS_LENGTH = 25  # strings this long are addresses or hashes, not words
_TIMES = frozenset({"lat", "spot", "spct"})


def short_channel(channel: str) -> str:
    return _SHORT.get(channel, channel.partition("@")[2] or channel)


def clock(ms: int) -> str:
    """Epoch ms as a UTC time of day."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def number(value: Any) -> str:
    """A figure in a few characters: 81,188 · 0.9998 · 29.93B."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)  # counts and ids, exact
    magnitude = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if magnitude >= limit:
            return f"{value / limit:.2f}{suffix}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _fields(data: dict[str, Any], budget: int) -> list[str]:
    parts: list[str] = []
    for key, value in data.items():
        if len(parts) >= budget:
            break
        if key in _SKIPPED or value is None:
            continue
        if key in _TIMES and isinstance(value, int):
            parts.append(f"{key}={clock(value)}")
        elif isinstance(value, dict):  # pool_metric's windows: the first one
            inner = _fields(value, budget - len(parts) - 1)
            parts.append(f"{key}: " + " ".join(inner))
        elif isinstance(value, list):  # token_metric's sts: the first window
            first = value[0] if value and isinstance(value[0], dict) else None
            if first is not None:
                rest = {k: v for k, v in first.items() if k != "win"}
                inner = _fields(rest, budget - len(parts) - 1)
                parts.append(f"{first.get('win', '?')}: " + " ".join(inner))
        elif isinstance(value, str) and len(value) >= _ADDRESS_LENGTH:
            continue
        else:
            parts.append(f"{key}={number(value)}")
    return parts


def summary(data: dict[str, Any]) -> str:
    """The first readable fields of a payload, compactly."""
    return " ".join(_fields(data, _MAX_FIELDS))


@dataclass(slots=True)
class _Row:
    channel: str
    subject: str
    count: int = 0
    event_ms: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class Board:
    """One row per subscription (and per ``tp`` variant), redrawn in place."""

    def __init__(self, stream: Stream, names: SymbolBook, subs: int) -> None:
        self._stream = stream
        self._names = names
        self._subs = subs
        self._rows: dict[tuple[int, str, str, str], _Row] = {}
        self._started = time.monotonic()

    def subject(self, params: dict[str, Any]) -> str:
        """What a subscription is about, by name where one is known."""
        pid = params.get("platform_id")
        chain = pid if isinstance(pid, int) else -1
        if "crypto_ids" in params:
            cid = params["crypto_ids"]
            name = self._names.market(cid) if isinstance(cid, int) else None
            text = name or f"#{cid}"
        elif "address" in params:
            text = self._names.token(chain, params["address"]) or short_address(params["address"])
        elif "pool_address" in params:
            pool = params["pool_address"]
            text = self._names.pool(chain, pool) or short_address(pool)
        elif "wallet_address" in params:
            wallet = params["wallet_address"]
            tags = self._names.wallet_tags(chain, wallet)
            text = short_address(wallet) + (f" {tags}" if tags else "")
        else:
            text = " ".join(str(v) for v in params.values())
        interval = params.get("interval")
        return f"{text} {interval}" if interval else text

    def update(self, push: Push[Any]) -> None:
        data = push.data if isinstance(push.data, dict) else {}
        pid = push.params.get("platform_id")
        self._names.learn(pid if isinstance(pid, int) else None, data)
        identity = _encode(push.params).decode()
        variant = str(data.get("tp", "")) if push.channel in _VARIANTS else ""
        key = (_ORDER.get(push.channel, 99), push.channel, identity, variant)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(short_channel(push.channel), "")
        row.subject = self.subject(push.params)  # a symbol may have been learnt since
        row.count += 1
        event = data.get("ts", data.get("ot"))
        row.event_ms = event if isinstance(event, int) else push.ts
        row.data = data

    def render(self) -> Table:
        stats = self._stream.stats()
        elapsed = int(time.monotonic() - self._started)
        table = Table(
            title=f"cmcstream tail · {self._subs} subscribed · {self._stream.url}",
            caption=(
                f"{self._stream.state.value} · {stats['received']:,} pushes in "
                f"{elapsed // 60}m{elapsed % 60:02d}s · {stats['duplicates']} duplicates "
                f"dropped · {stats['outages']} outages · Ctrl-C to quit"
            ),
            box=box.SIMPLE_HEAD,
            expand=True,
            pad_edge=False,
        )
        table.add_column("channel", no_wrap=True)
        table.add_column("subject", no_wrap=True, max_width=18, overflow="ellipsis")
        table.add_column("n", justify="right", no_wrap=True)
        table.add_column("time UTC", no_wrap=True)
        table.add_column("latest", no_wrap=True, overflow="ellipsis", ratio=1)
        for _, row in sorted(
            self._rows.items(), key=lambda item: (item[0][0], item[1].subject, item[0][3])
        ):
            table.add_row(
                row.channel, row.subject, f"{row.count:,}", clock(row.event_ms), summary(row.data)
            )
        return table


def _json_line(push: Push[Any]) -> str:
    return (
        _encode(
            {"channel": push.channel, "params": push.params, "data": push.data, "ts": push.ts}
        ).decode()
        + "\n"
    )


async def _watch(
    stream: Stream,
    stopper: Stopper,
    board: Board | None,
    live: Live | None,
    count: int | None,
    duration: float | None,
) -> int:
    """Hand pushes to the board (or stdout) until a limit or a stop; the pushes seen."""
    deadline = None if duration is None else time.monotonic() + duration
    seen = 0
    drawn = 0.0
    while (count is None or seen < count) and not stopper.stopped:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        try:
            push = await stream.recv(timeout=_REFRESH_S if left is None else min(left, _REFRESH_S))
        except TimeoutError:
            push = None
        if push is not None:
            seen += 1
            if board is None:
                sys.stdout.write(_json_line(push))
                sys.stdout.flush()
            else:
                board.update(push)
        if live is not None and board is not None and time.monotonic() - drawn >= _REFRESH_S:
            live.update(board.render(), refresh=True)
            drawn = time.monotonic()
    return seen


async def tail(
    url: str,
    api_key: str,
    subs: Sequence[Sub],
    *,
    as_json: bool,
    count: int | None,
    duration: float | None,
    console: Console | None = None,
) -> int:
    """Stream until ``count`` pushes, ``duration`` seconds, Ctrl-C or SIGTERM;
    returns the pushes seen."""
    names = SymbolBook()
    if not as_json and url != DEFAULT_URL:
        names = SymbolBook(await asyncio.to_thread(simulator_of, url))
    with Stopper() as stopper:
        async with open_stream(url, api_key, subs) as stream:
            stopper.arm()
            if as_json:
                return await _watch(stream, stopper, None, None, count, duration)
            board = Board(stream, names, len(subs))
            live = Live(
                board.render(), console=console or Console(), auto_refresh=False, transient=False
            )
            live.start()
            try:
                return await _watch(stream, stopper, board, live, count, duration)
            finally:
                live.update(board.render(), refresh=True)
                live.stop()
