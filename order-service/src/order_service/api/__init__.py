"""HTTP API of order-service: routes, dependencies and request/response schemas."""
