"""Background loops of exchange-rate-service: the reference-rate refresh."""
