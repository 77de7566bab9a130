"""FX rules: exact arithmetic, rate snapshots and cross rates, staleness, the quote state machine."""
