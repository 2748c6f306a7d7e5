"""Public helpers for testing against cmcstream: a manual clock and an in-process server."""

from cmcstream.clock import ManualClock
from cmcstream.testing.server import running_server

__all__ = ["ManualClock", "running_server"]
