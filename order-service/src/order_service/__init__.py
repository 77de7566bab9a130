"""order-service: orders and their status, driven by payment events."""
