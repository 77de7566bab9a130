"""Background loops of admin-service."""
