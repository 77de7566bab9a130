"""Background loops of order-service, on the shared worker loop."""
