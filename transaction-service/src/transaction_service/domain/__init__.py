"""Ledger rules: postings from payment totals, fees, limits; no FastAPI, no SQL strings."""
