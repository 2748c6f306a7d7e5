"""Pure reducers: raw events in, channel updates out. No I/O, no wall clock."""

from __future__ import annotations

from typing import Literal

__all__ = ["build"]


def build() -> Literal["compiled", "interpreted"]:
    """How the on-chain engine runs here: mypyc-compiled extensions, or Python source.

    ``CMCSTREAM_COMPILE=1 pip install .`` gives the compiled build (see setup.py);
    both stream the same payloads, the compiled one faster.
    """
    from cmcstream.engine import onchain

    return "interpreted" if onchain.__file__.endswith(".py") else "compiled"
