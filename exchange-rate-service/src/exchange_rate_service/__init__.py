"""exchange-rate-service: ECB reference rates, conversion in minor units and locked FX quotes."""
