"""Delivery channels; email over SMTP is the only one so far."""
