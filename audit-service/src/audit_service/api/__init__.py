"""HTTP routes of audit-service: the admin-only audit query, verify, export and summary API."""
