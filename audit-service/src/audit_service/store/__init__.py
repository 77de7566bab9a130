"""Tables and queries of the `audit` schema."""
