"""Seeded simulators: the market universe and, later, the DEX world."""
