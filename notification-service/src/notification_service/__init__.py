"""notification-service: tells customers about their payments by email, with retries and replay."""
