"""Kafka side of order-service: consumed payment events and published order events."""
