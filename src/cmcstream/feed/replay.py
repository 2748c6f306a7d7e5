"""Replay: what ``cmcstream record`` wrote, published again at the pace it was received.

Only the ``data`` frames of a recording are replayed (state lines, acks and
errors are the recording client's business). Each push goes out on its topic
with its payload byte for byte, recorded times included, in a fresh envelope
whose ``ts`` is the time it is sent now: wire times are wall-clock. Pushes
are spaced as their ``recv`` times were, divided by ``speed``. Only topics
some gateway watches are published, so keys, limits and credits apply as with
any other source.

The first pass starts when some topic is first watched, so a client that
connects after ``serve`` started sees the file from its beginning. At the end
of the file the replay stops (connections stay open and quiet), or with
``loop`` starts over from the first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from cmcstream.bus.base import Bus
from cmcstream.clock import Clock, SystemClock
from cmcstream.feed.publisher import Publisher
from cmcstream.protocol.channels import ChannelRegistry

__all__ = ["Recorded", "Replay", "read_recording"]

logger = logging.getLogger(__name__)


class _Frame(msgspec.Struct):
    type: str = ""
    channel: str = ""
    params: dict[str, Any] = {}
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Line(msgspec.Struct):
    recv: float
    frame: msgspec.Raw = msgspec.Raw(b"")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded push: when it was received (epoch s), its topic and its payload's JSON."""

    recv: float
    topic: str
    payload: msgspec.Raw


_line = msgspec.json.Decoder(_Line)
_frame = msgspec.json.Decoder(_Frame)


def read_recording(path: Path, registry: ChannelRegistry) -> Iterator[Recorded]:
    """The pushes of a recording in file order; unreadable lines are skipped with a warning."""
    with path.open("rb") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                line = _line.decode(text)
                if not line.frame:
                    continue  # a connection state change
                frame = _frame.decode(line.frame)
            except msgspec.DecodeError as exc:
                logger.warning("%s:%d: not a recorded frame (%s)", path, number, exc)
                continue
            if frame.type != "data":
                continue
            sub = registry.subscription_of_push(frame.channel, frame.params)
            if sub is None:
                logger.warning("%s:%d: a push of no known topic", path, number)
                continue
            yield Recorded(line.recv, sub.topic, frame.data)


class Replay:
    """Publishes a recording onto the bus at its recorded pace (a :class:`FeedRunner`).

    Args:
        path: a file written by ``cmcstream record``.
        bus: where pushes go and interest comes from.
        speed: recorded seconds per wall second.
        loop: start over at the end of the file rather than stop.
        wall: the time stamped on pushes, and by which they are paced.
        sleep: waits that many seconds (tests pass one that moves a manual clock).
    """

    def __init__(
        self,
        path: Path,
        bus: Bus,
        *,
        speed: float = 1.0,
        loop: bool = False,
        wall: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.path = path
        self.bus = bus
        self.speed = speed
        self.loop = loop
        self.wall: Clock = wall if wall is not None else SystemClock()
        self._sleep = sleep
        self.registry = ChannelRegistry()
        self.publisher = Publisher(bus)
        self.replayed = 0  # pushes read from the file, watched or not
        self.passes = 0
        self.finished = False
        self._watched = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"no recording at {self.path}")
        self.bus.set_interest(self._watch, self._unwatch)
        self._task = asyncio.get_running_loop().create_task(self.run(), name="replay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def health(self) -> dict[str, Any]:
        return {
            "source": "replay",
            "recording": str(self.path),
            "speed": self.speed,
            "replayed": self.replayed,
            "published": self.publisher.published,
            "passes": self.passes,
            "finished": self.finished,
        }

    async def run(self) -> None:
        """Replay the file once, or over and over with ``loop``, from the first interest on."""
        await self._watched.wait()
        while True:
            played = await self._pass()
            self.passes += 1
            if not self.loop or not played:
                break
        self.finished = True
        logger.info("replay of %s finished: %d pushes", self.path, self.replayed)

    async def _pass(self) -> int:
        """One pass over the file: each push when its recorded offset, over ``speed``, is due."""
        played = 0
        first: float | None = None
        start_ms = self.wall.now_ms()
        for push in read_recording(self.path, self.registry):
            if first is None:
                first = push.recv
            due_ms = start_ms + (push.recv - first) * 1000.0 / self.speed
            wait_ms = due_ms - self.wall.now_ms()
            if wait_ms > 0:
                self.publisher.flush()  # what is due now goes out before the wait
                await self._sleep(self.wall.wall_delay(wait_ms))
            self.publisher.publish(push.topic, push.payload, self.wall.now_ms())
            self.replayed += 1
            played += 1
        self.publisher.flush()
        return played

    def _watch(self, topic: str) -> None:
        sub = self.registry.subscription_of(topic)
        if sub is None:
            logger.warning("ignoring interest in %r, which is not a topic", topic)
            return
        self.publisher.watch(sub)
        self._watched.set()

    def _unwatch(self, topic: str) -> None:
        self.publisher.unwatch(topic)
