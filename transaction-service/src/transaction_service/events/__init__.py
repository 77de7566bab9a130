"""Consumed topics: payment.event (postings, limit releases), order.event, config.changed."""
