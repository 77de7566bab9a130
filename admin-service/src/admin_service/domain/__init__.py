"""Rules of admin-service: configuration versions, suite health."""
