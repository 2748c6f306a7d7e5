"""Producers of raw engine events (simulator, replay, chains, exchanges)."""
