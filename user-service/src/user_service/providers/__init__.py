"""Payment providers user-service talks to when saving payment methods (Stripe for now)."""
