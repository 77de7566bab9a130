"""HTTP routes of admin-service: configuration, users, analytics, health."""
