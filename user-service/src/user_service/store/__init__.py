"""Persistence: tables and queries in the `users` schema; nothing here commits."""
