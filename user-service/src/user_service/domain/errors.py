"""user-service's client-facing errors; each `code` is stable and documented in the README."""

from __future__ import annotations

from paygate_common.errors import (
    Conflict,
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


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "The email or password is wrong"


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
