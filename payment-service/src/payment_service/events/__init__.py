"""Handlers for the topics payment-service consumes (`order.create`, `order.event`)."""
