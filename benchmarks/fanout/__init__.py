"""The fan-out benchmark suite behind ``benchmarks/run.py``.

One process runs the server under test, pinned to one core; a load generator
(:mod:`fanout.loadgen`) runs real WebSocket connections from the other core and
is driven phase by phase over its standard input and output. The same load
generator, frames and subscriptions measure cmcstream and its peers
(``benchmarks/peers/``).
"""
