"""cmcstream: a protocol-faithful CoinMarketCap WebSocket API server, and its client."""

from cmcstream.version import __version__

__all__ = ["__version__"]
