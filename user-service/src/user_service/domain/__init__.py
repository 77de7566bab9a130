"""Rules of user-service: accounts, passwords, sign-in throttling, tokens, payment methods."""
