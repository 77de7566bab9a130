"""Typed bodies of the `/internal/*` calls: the serving service's response_model and its callers' parser."""
