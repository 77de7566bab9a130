"""Tables and queries of the `rates` schema, and the Redis read-through cache of rate snapshots."""
