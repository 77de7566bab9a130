"""paygate user-service: accounts, sign-in, access tokens (JWKS) and saved payment methods."""
