"""Pure reducers: raw events in, channel updates out. No I/O, no wall clock."""
