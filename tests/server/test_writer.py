"""The outbox and flush scheduler with a fake transport: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.protocol import State

from cmcstream.config import WriterPolicy
from cmcstream.server.writer import FlushScheduler, Outbox


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class FakeProtocol:
    state = State.OPEN


class FakeScheduler:
    def __init__(self) -> None:
        self.marked: list[Outbox] = []
        self.registered: list[Outbox] = []

    def register(self, outbox: Outbox) -> None:
        self.registered.append(outbox)

    def mark(self, outbox: Outbox) -> None:
        self.marked.append(outbox)


def push(outbox: Outbox, topic: str, frame: bytes, collapsible: bool) -> None:
    """What the hub does for one subscriber."""
    outbox.sink(topic, collapsible)(frame)


def make(policy: WriterPolicy | None = None) -> tuple[Outbox, FakeTransport, list[Outbox]]:
    transport = FakeTransport()
    failed: list[Outbox] = []
    outbox = Outbox(
        transport,  # type: ignore[arg-type]
        FakeProtocol(),  # type: ignore[arg-type]
        FakeScheduler(),  # type: ignore[arg-type]
        policy or WriterPolicy(soft_limit_bytes=100, hard_limit_bytes=1000, slow_timeout_s=5),
        failed.append,
    )
    return outbox, transport, failed


def test_everything_queued_leaves_in_one_write() -> None:
    outbox, transport, _ = make()
    outbox.send(b"ack")
    push(outbox, "t|1", b"p1", True)
    push(outbox, "t|2", b"p2", False)
    assert outbox.flush(0.0) is False
    assert transport.writes == [b"ackp1p2"]
    assert outbox.data_sent == 2
    assert outbox.last_push == 0.0
    outbox.flush(1.0)
    assert transport.writes == [b"ackp1p2"]  # nothing new, nothing written


def test_slow_reader_collapses_latest_values_and_keeps_others_in_order() -> None:
    outbox, transport, failed = make()
    transport.buffered = 500
    assert outbox.flush(0.0) is False  # nothing queued yet, but now marked slow
    assert outbox.slow_since == 0.0
    for i in range(5):
        push(outbox, "price|1", b"a%d" % i, True)
        push(outbox, "tx|1", b"t%d" % i, False)
    assert outbox.flush(1.0) is True
    assert transport.writes == []
    assert outbox.data_dropped == 4
    transport.buffered = 0
    assert outbox.flush(2.0) is False
    assert transport.writes == [b"t0t1t2t3t4a4"]
    assert outbox.data_sent == 6
    assert outbox.slow_since is None
    assert failed == []


def test_slow_reader_over_the_hard_cap_fails() -> None:
    outbox, transport, failed = make()
    transport.buffered = 900
    push(outbox, "tx|1", b"x" * 200, False)
    assert outbox.flush(0.0) is False
    assert failed == [outbox]
    assert outbox.failed
    # Its connection takes it off the hub; anything that still arrives is dropped.
    push(outbox, "tx|1", b"more", False)
    outbox.send(b"ack")
    assert outbox.queued_bytes == 4
    assert outbox.flush(1.0) is False
    assert outbox.queued_bytes == 0
    assert transport.writes == []


def test_slow_reader_for_too_long_fails() -> None:
    outbox, transport, failed = make()
    transport.buffered = 200
    push(outbox, "price|1", b"p", True)
    assert outbox.flush(0.0) is True
    assert outbox.flush(4.0) is True
    assert failed == []
    assert outbox.flush(5.5) is False
    assert failed == [outbox]


def test_nothing_is_written_after_close() -> None:
    outbox, transport, _ = make()
    push(outbox, "t|1", b"p", False)
    transport.closing = True
    assert outbox.flush(0.0) is False
    assert transport.writes == []
    assert outbox.queued_bytes == 0


async def test_scheduler_flushes_once_per_loop_pass_and_retries_blocked() -> None:
    loop = asyncio.get_running_loop()
    scheduler = FlushScheduler(loop, retry_s=0.01)
    slow_changes: list[float | None] = []
    transports = [FakeTransport(), FakeTransport()]
    outboxes = [
        Outbox(
            transport,  # type: ignore[arg-type]
            FakeProtocol(),  # type: ignore[arg-type]
            scheduler,
            WriterPolicy(soft_limit_bytes=10, hard_limit_bytes=10_000, slow_timeout_s=60),
            lambda _: None,
            lambda o: slow_changes.append(o.slow_since),
        )
        for transport in transports
    ]
    first, second = outboxes
    for i in range(3):
        push(first, f"t|{i}", b"x", False)
        scheduler.fanout()  # what the hub does after each topic
    first.send(b"!")  # a reply marks its own outbox
    await asyncio.sleep(0)
    assert transports[0].writes == [b"xxx!"]
    assert transports[1].writes == []  # nothing queued, nothing written
    assert first.data_sent == 3
    transports[0].buffered = 100
    first.send(b"ack")
    await asyncio.sleep(0)
    assert len(slow_changes) == 1  # became slow: the hub is told to swap its sinks
    assert slow_changes[0] is not None
    push(first, "t|1", b"y", True)  # the hub now uses the collapsing sink
    push(first, "t|1", b"z", True)
    push(second, "t|1", b"z", True)
    scheduler.fanout()
    await asyncio.sleep(0)
    assert transports[0].writes == [b"xxx!"]
    assert transports[1].writes == [b"z"]  # a slow reader holds back nobody else
    transports[0].buffered = 0
    event = asyncio.Event()
    loop.call_later(0.05, event.set)
    await event.wait()
    assert transports[0].writes == [b"xxx!", b"ackz"]
    assert first.data_dropped == 1
    assert slow_changes[-1] is None  # caught up: told once more
    for outbox in outboxes:
        scheduler.forget(outbox)


def test_policy_defaults_are_documented() -> None:
    policy: Any = WriterPolicy()
    assert (policy.soft_limit_bytes, policy.hard_limit_bytes, policy.slow_timeout_s) == (
        256 * 1024,
        4 * 1024 * 1024,
        30.0,
    )
