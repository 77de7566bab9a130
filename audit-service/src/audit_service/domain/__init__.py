"""Audit rules: the record drafted from an event, the hash chain, signed checkpoints."""
