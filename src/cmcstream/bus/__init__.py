"""Carries encoded updates by topic from the engine to the nodes that have subscribers."""

from cmcstream.bus.base import Bus, BusHandler
from cmcstream.bus.memory import MemoryBus

__all__ = ["Bus", "BusHandler", "MemoryBus"]
