"""Persistence: tables and the guarded queries the domain uses; nothing here commits."""
