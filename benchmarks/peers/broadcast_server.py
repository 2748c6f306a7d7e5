"""Peer (a): what a Python developer writes first, on ``websockets.broadcast()``.

One handler per connection on the ``websockets`` asyncio server with its
defaults, and a tick that hands each id's push to ``broadcast()``: the library
frames and writes it once per subscriber, with no coalescing and no backpressure.
Keep-alive pings are off, as in cmcstream, whose keep-alive is the protocol's
JSON ping.
"""

from __future__ import annotations

import asyncio

from peerlib import (
    Frames,
    SimClock,
    Subscriptions,
    handle_request,
    parse_args,
    ready,
    tick_forever,
    welcome,
)
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    frames = Frames(args.frames)
    clock = SimClock(args.start, args.speed)
    subs = Subscriptions(frames.ids)

    async def handler(ws: ServerConnection) -> None:
        if ws.request is None or "X-CMC_PRO_API_KEY" not in ws.request.headers:
            await ws.close(4001, "API key missing")
            return
        await ws.send(welcome(clock), text=True)
        try:
            async for message in ws:
                reply = handle_request(message, ws, subs, clock)
                if reply is not None:
                    await ws.send(reply, text=True)
        finally:
            subs.drop(ws)

    def publish(now_ms: int) -> None:
        ts = str(now_ms).encode()
        for cid, subscribers in subs.by_id.items():
            broadcast(subscribers, frames.push(cid, ts), text=True)

    async with serve(handler, args.host, args.port, ping_interval=None) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await tick_forever(clock, frames.cadence_ms, publish, args.hold)


if __name__ == "__main__":
    asyncio.run(main())
