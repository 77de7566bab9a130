"""Consumed topics (payment.event) and what the service publishes (notification.dlq)."""
