"""HTTP API of exchange-rate-service: routes, dependencies and request/response schemas."""
