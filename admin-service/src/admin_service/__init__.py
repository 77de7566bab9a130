"""paygate admin-service: configuration store, operator API and web consoles."""
