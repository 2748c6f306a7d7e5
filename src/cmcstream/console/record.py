"""``cmcstream record``: every frame of a stream, with its receive time, as JSON lines.

Each line is one of::

    {"recv": 1795932125.316201, "conn": 0, "frame": {...the frame, verbatim...}}
    {"recv": 1795932130.002113, "conn": 0, "state": "reconnecting", "reason": "closed 1011"}
    {"recv": 1795932131.410370, "conn": 0, "state": "open", "reason": "connected",
     "outage": [1795932129.990120, 1795932131.410370]}

``recv`` is epoch seconds; ``conn`` says which of the stream's connections it
came over. Frames that are not JSON are kept as a string under ``"text"``.
The file is flushed after every line, so a crash loses nothing already received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from cmcstream.client import StateChange
from cmcstream.console.session import Stopper, open_stream
from cmcstream.console.subscriptions import Sub

__all__ = ["Recorder", "record"]

_encode = msgspec.json.Encoder().encode


class Recorder:
    """Writes frames and state changes to an open text file."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self.frames = 0

    def frame(self, link: int, text: str, received: float) -> None:
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError:
            line = _encode({"recv": received, "conn": link, "text": text}).decode()
        else:
            line = f'{{"recv":{received!r},"conn":{link},"frame":{text}}}'
        self._write(line)
        self.frames += 1

    def state(self, change: StateChange) -> None:
        entry: dict[str, Any] = {
            "recv": time.time(),
            "conn": change.link,
            "state": change.state.value,
            "reason": change.reason,
        }
        if change.outage is not None:
            entry["outage"] = [change.outage.start, change.outage.end]
        self._write(_encode(entry).decode())

    def _write(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()


async def record(
    path: Path,
    url: str,
    api_key: str,
    subs: Sequence[Sub],
    duration: float | None,
) -> int:
    """Record until ``duration`` seconds passed, Ctrl-C or SIGTERM; returns the frames written."""
    with Stopper() as stopper, path.open("a", encoding="utf-8") as out:
        recorder = Recorder(out)
        async with open_stream(
            url, api_key, subs, on_frame=recorder.frame, on_state=recorder.state
        ) as stream:
            stopper.arm()

            async def drain() -> None:
                async for _ in stream:
                    pass  # the recorder already wrote it

            draining = asyncio.ensure_future(drain())
            stopping = asyncio.ensure_future(stopper.event.wait())
            try:
                await asyncio.wait(
                    (draining, stopping), timeout=duration, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                draining.cancel()
                stopping.cancel()
                await asyncio.gather(draining, stopping, return_exceptions=True)
            if not draining.cancelled():
                draining.result()  # a stream that ended on an error says so
        return recorder.frames
