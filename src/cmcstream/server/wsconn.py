"""The server's WebSocket connection class: one that its last reference frees whole.

A websockets connection ends in reference cycles that only the cyclic garbage
collector can free:

- its protocol object's parser is a generator suspended at its final ``yield``
  whose frame holds the protocol itself (every connection, however it ends);
- a ``select_subprotocol`` hook is bound to the protocol and holds the
  connection;
- when it ends on an exception (an opening handshake cut off by its timeout
  or by the client, a request that is not HTTP, a client that drops the TCP
  connection mid-stream) the exception kept on the protocol (``handshake_exc``,
  ``parser_exc``) has a traceback holding the parser's frames, which hold the
  protocol: some 40 objects per failed handshake.

A server that collects rarely (see :mod:`cmcstream.heap`) keeps all of it for
a long time, and a stream of half-open handshakes grows its memory round after
round. Once the transport is gone neither the parser nor the tracebacks have
any use (the server never re-raises them; the exceptions themselves, with
their messages and causes, are kept), so both are let go there and the whole
connection is freed by reference counting.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection

__all__ = ["CycleFreeConnection", "drop_tracebacks"]


def drop_tracebacks(exc: BaseException | None) -> None:
    """Forget the traceback of ``exc`` and of every exception it was caused by or raised in."""
    seen: set[int] = set()
    chain = [exc]
    while chain:
        link = chain.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        link.__traceback__ = None
        chain += (link.__cause__, link.__context__)


class CycleFreeConnection(ServerConnection):
    """A :class:`~websockets.asyncio.server.ServerConnection` that leaves no cycle when it ends.

    Passed to ``serve(create_connection=...)``.
    """

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        protocol = self.protocol
        # The protocol has seen the end of the stream (connection_lost feeds
        # it) and its parser is never stepped again.
        protocol.parser.close()
        # A select_subprotocol hook is bound to the protocol and closes over this
        # connection (websockets' serve() wraps it so): one more cycle, of no use now.
        vars(protocol).pop("select_subprotocol", None)
        drop_tracebacks(protocol.handshake_exc)
        drop_tracebacks(protocol.parser_exc)
        drop_tracebacks(exc)
