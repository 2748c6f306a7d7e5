"""The cmcstream client: CoinMarketCap WebSocket streams that never lose data silently.

::

    import cmcstream

    async with cmcstream.connect(api_key="...", url="ws://127.0.0.1:8765/v1") as stream:
        await stream.subscribe("market@crypto_latest_price", crypto_ids=[1, 1027])
        async for push in stream:
            print(push.params["crypto_ids"], push.data.p)

:class:`SyncClient` offers the same from plain (non-async) code.
"""

from cmcstream.client.backoff import Backoff
from cmcstream.client.buffer import LATEST_VALUE_CHANNELS, Overflow
from cmcstream.client.frames import Ack, Push
from cmcstream.client.link import ConnectionState, Outage, StateChange
from cmcstream.client.stream import DEFAULT_URL, Stream, connect
from cmcstream.client.sync import SyncClient

__all__ = [
    "DEFAULT_URL",
    "LATEST_VALUE_CHANNELS",
    "Ack",
    "Backoff",
    "ConnectionState",
    "Outage",
    "Overflow",
    "Push",
    "StateChange",
    "Stream",
    "SyncClient",
    "connect",
]
