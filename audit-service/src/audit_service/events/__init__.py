"""Consumed topics: every event topic becomes audit records."""
