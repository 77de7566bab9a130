"""Tables and queries of the `admin` schema."""
