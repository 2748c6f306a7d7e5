"""The feed: sources through the engines to encoded pushes on the bus.

It owns the tick loops, the reference prices the on-chain side prices quote
tokens with, and encoding each push once; it learns which topics are watched
from the bus alone, so it runs the same beside a gateway or in a process of
its own.
"""

from cmcstream.feed.feed import Feed

__all__ = ["Feed"]
