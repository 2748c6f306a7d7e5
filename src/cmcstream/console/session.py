"""What ``tail`` and ``record`` share: one stream for every subscription, failures
worded for people, and an orderly stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

from cmcstream.client import DEFAULT_URL, Stream
from cmcstream.console.subscriptions import Sub
from cmcstream.exceptions import (
    AuthError,
    CapacityError,
    CMCStreamError,
    ConnectionLost,
    RequestError,
)

__all__ = ["Stopper", "StreamFailed", "describe", "open_stream"]

_LINK_PREFIX = re.compile(r"^connection \d+ lost: ")


class StreamFailed(Exception):
    """A stream command cannot go on; the message says why, for the user."""


def _reason(error: CMCStreamError) -> str:
    if isinstance(error, ConnectionLost):
        return _LINK_PREFIX.sub("", str(error))
    return f"{type(error).__name__}: {error}"


def describe(error: CMCStreamError, url: str, *, connecting: bool) -> str:
    """One line naming the endpoint and what went wrong with it."""
    if isinstance(error, AuthError):
        return f"{url} refused the key: {_reason(error)}"
    if connecting and isinstance(error, ConnectionLost):
        hint = (
            " (for `cmcstream serve`, pass --url ws://127.0.0.1:8765/v1 or set CMCSTREAM_URL)"
            if url == DEFAULT_URL
            else ""
        )
        return f"cannot connect to {url}: {_reason(error)}{hint}"
    if isinstance(error, ConnectionLost):
        return f"connection to {url} lost: {_reason(error)}"
    return f"{url}: {_reason(error)}"


@contextlib.asynccontextmanager
async def open_stream(
    url: str, api_key: str, subs: Sequence[Sub], **options: Any
) -> AsyncIterator[Stream]:
    """One :class:`Stream` holding every subscription in ``subs``.

    The stream spreads them over as many connections as the plan's
    per-connection limit requires.

    Raises:
        StreamFailed: the endpoint cannot be reached, refuses the key, refuses
            a subscription, or the stream breaks later.
    """
    stream = Stream(api_key, url, raw=True, **options)
    try:
        await stream.open()
    except CMCStreamError as exc:
        await stream.close()
        raise StreamFailed(describe(exc, url, connecting=True)) from None
    try:
        for sub in subs:
            try:
                await stream.subscribe(sub.channel, sub.params)
            except (RequestError, CapacityError) as exc:
                raise StreamFailed(f"{url} refused {sub}: {_reason(exc)}") from None
        yield stream
    except CMCStreamError as exc:
        raise StreamFailed(describe(exc, url, connecting=False)) from None
    finally:
        await stream.close()


class Stopper:
    """Ends a stream command in order on SIGINT (Ctrl-C) or SIGTERM.

    Before :meth:`arm`, a signal cancels the task that entered the stopper
    (connecting can take seconds); after it, the signal only sets :attr:`event`
    so the command finishes what it was writing. A SIGINT the process was
    started with ignored (a background job of a script) stays ignored, as
    is the convention; SIGTERM still works there. Off the main thread, where
    signals cannot be caught, it does nothing.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._armed = False
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> Stopper:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        signals = [signal.SIGTERM]
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signals.append(signal.SIGINT)
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._signalled)
                self._installed.append(sig)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)

    def arm(self) -> None:
        self._armed = True

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def _signalled(self) -> None:
        if self._armed:
            self.event.set()
        elif self._task is not None:
            self._task.cancel()
