"""audit-service: a masked, hash-chained, insert-only audit trail of every event and security action."""
