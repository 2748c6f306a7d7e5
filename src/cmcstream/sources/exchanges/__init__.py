"""Centralized exchanges as the market source, through ccxt (the ``exchanges`` extra).

:mod:`.venues` and :mod:`.assets` need nothing beyond the core install;
:mod:`.source` imports ccxt only when a source starts.
"""
