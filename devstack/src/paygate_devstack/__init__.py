"""paygate local stack."""
