"""Background loops of audit-service: signed checkpoints and the retention archive."""
