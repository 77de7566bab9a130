"""HTTP API of transaction-service: history, balance, analytics, the trial balance, limits."""
