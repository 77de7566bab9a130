"""Tables and queries of the `transactions` schema."""
