"""The client for plain code: scripts, notebooks, threads.

:class:`SyncClient` runs a :class:`~cmcstream.client.stream.Stream` on an event
loop in a background thread and exposes it with blocking calls, with the same
features (reconnects, dedupe, buffer policy, typed payloads)::

    with cmcstream.SyncClient(api_key=key, url="ws://127.0.0.1:8765/v1") as client:
        client.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
        for push in client:
            print(push.data.p)

``on_state`` and ``on_frame`` callbacks run on the background thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from cmcstream.client.frames import Ack, Push
from cmcstream.client.link import ConnectionState, Outage
from cmcstream.client.stream import DEFAULT_URL, Stream
from cmcstream.exceptions import StreamClosed

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """A blocking facade over :class:`Stream`; takes the same options."""

    def __init__(self, api_key: str | None = None, url: str = DEFAULT_URL, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cmcstream-client", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._stream: Stream = self._call(self._open(api_key, url, options))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _open(api_key: str | None, url: str, options: dict[str, Any]) -> Stream:
        return await Stream(api_key, url, **options).open()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("no result in time") from None

    def subscribe(self, channel: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Ack:
        """See :meth:`Stream.subscribe`."""
        return self._call(self._stream.subscribe(channel, params, **kwargs))

    def unsubscribe(self, channel: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Ack:
        """See :meth:`Stream.unsubscribe`."""
        return self._call(self._stream.unsubscribe(channel, params, **kwargs))

    def unsubscribe_all(self) -> Ack:
        """See :meth:`Stream.unsubscribe_all`."""
        return self._call(self._stream.unsubscribe_all())

    def recv(self, timeout: float | None = None) -> Push[Any]:
        """The next push, waiting at most ``timeout`` seconds (``TimeoutError`` after)."""
        return self._call(self._stream.recv(timeout))

    def __iter__(self) -> Iterator[Push[Any]]:
        while True:
            try:
                yield self.recv()
            except StreamClosed:
                return

    @property
    def state(self) -> ConnectionState:
        return self._stream.state

    @property
    def outages(self) -> list[Outage]:
        return list(self._stream.outages)

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        return self._call(_on_loop(lambda: self._stream.subscriptions))

    @property
    def connections(self) -> int:
        return self._stream.connections

    def stats(self) -> dict[str, Any]:
        return self._call(_on_loop(self._stream.stats))

    def close(self) -> None:
        """Close the stream and stop the background thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._stream.close(), timeout=30)
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _on_loop(read: Callable[[], T]) -> T:
    # State is read on the loop's thread, where it changes.
    return read()
