"""Background loops of transaction-service, each opening its own unit of work per batch."""
