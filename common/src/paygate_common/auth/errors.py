"""Authentication errors with stable codes; details are safe to show and never echo the token."""

from __future__ import annotations

from paygate_common.errors import Forbidden, ServiceUnavailable, Unauthorized


class TokenMissing(Unauthorized):
    code, title = "token_missing", "Authentication required"


class TokenInvalid(Unauthorized):
    code, title = "token_invalid", "The access token is not valid"


class TokenExpired(Unauthorized):
    code, title = "token_expired", "The access token has expired"


class AdminRequired(Forbidden):
    code, title = "admin_required", "This action needs the admin role"


class ServiceTokenInvalid(Unauthorized):
    code, title = "service_token_invalid", "A valid service token is required"


class JWKSUnavailable(ServiceUnavailable):
    """No verification keys are known and the key set could not be fetched."""

    code, title = "jwks_unavailable", "Token verification keys are unavailable"
