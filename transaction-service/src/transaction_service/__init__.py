"""transaction-service: a double-entry ledger the database enforces, fees, limits, history."""
