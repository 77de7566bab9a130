"""HTTP edge: routers, request/response schemas and dependencies; routes stay thin."""
