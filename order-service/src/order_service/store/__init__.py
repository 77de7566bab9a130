"""Tables and queries of the `orders` schema."""
