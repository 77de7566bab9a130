"""user-service's client-facing errors; each `code` is stable and documented in the README."""

from __future__ import annotations

from paygate_common.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaygateError,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)


class EmailTaken(Conflict):
    code, title = "email_taken", "An account with this email already exists"


class WeakPassword(InvalidRequest):
    code, title = "weak_password", "The password does not meet the password policy"


class TooManyAttempts(RateLimited):
    code, title = "too_many_attempts", "Too many failed sign-in attempts"


class UserNotFound(NotFound):
    code, title = "user_not_found", "No such user"


class PaymentMethodNotFound(NotFound):
    code, title = "payment_method_not_found", "No such payment method"


class PaymentMethodExists(Conflict):
    code, title = "payment_method_exists", "This payment method is already saved"


class CardDeclined(PaygateError):
    status_code, code, title = 402, "card_declined", "The card was declined"


class InvalidPaymentMethod(InvalidRequest):
    code, title = "invalid_payment_method", "The payment method token is not valid"


class ProviderUnavailable(ServiceUnavailable):
    code, title = "provider_unavailable", "The payment provider is unavailable"


class KeepsWhatWasWritten:
    """Marks a denial whose unit of work still commits: the audit row (and, for a reused refresh
    token, the session's revocation) must survive the error answer. See `api.deps`."""


class InvalidCredentials(KeepsWhatWasWritten, Unauthorized):
    code, title = "invalid_credentials", "The email or password is wrong"


class AccountDisabled(KeepsWhatWasWritten, Forbidden):
    code, title = "account_disabled", "This account is disabled"


class RefreshTokenInvalid(Unauthorized):
    code, title = "refresh_token_invalid", "The refresh token is not valid"


class RefreshTokenReused(KeepsWhatWasWritten, Unauthorized):
    code, title = (
        "refresh_token_reused",
        "The refresh token was already used; the session is revoked",
    )


class SessionNotFound(NotFound):
    code, title = "session_not_found", "No such session"


class SessionRequired(Forbidden):
    code, title = "session_required", "Sign in with a password; an API key cannot do this"


class ApiKeyNotFound(NotFound):
    code, title = "api_key_not_found", "No such API key"


class ApiKeyInvalid(Unauthorized):
    code, title = "api_key_invalid", "The API key is not valid"


class TooManyApiKeys(Conflict):
    code, title = "too_many_api_keys", "Revoke an API key before creating another"


class ServiceNotAllowed(Forbidden):
    code, title = "service_not_allowed", "This internal endpoint is not for the calling service"
