"""Tables and queries of the `notifications` schema."""
