"""The relay: local clients with local keys, one upstream subscription per watched topic."""

from cmcstream.relay.relay import Relay

__all__ = ["Relay"]
