"""Payment errors with stable codes (rendered as problem+json by the shared handler)."""

from __future__ import annotations

from paygate_common.errors import Conflict, InvalidRequest, NotFound

# shared with the other caller of user-service's payment context; imported from here too
from paygate_common.errors import PaymentMethodInvalid as PaymentMethodInvalid
from paygate_common.errors import UserDirectoryUnavailable as UserDirectoryUnavailable
from payment_service.connectors.base import UnsupportedFlow

# 422 `unsupported_by_provider`: raised by `connectors.base.require` for a flow not offered.
UnsupportedByProvider = UnsupportedFlow


class PaymentNotFound(NotFound):
    # Also what a caller sees for someone else's payment: existence is not disclosed.
    code, title = "payment_not_found", "Payment not found"


class RefundNotFound(NotFound):
    code, title = "refund_not_found", "Refund not found"


class InvalidState(Conflict):
    code, title = "invalid_state", "The payment is not in a state that allows this"


class RefundExceedsCaptured(InvalidRequest):
    code, title = "refund_exceeds_captured", "The refunds would exceed the captured amount"


class CaptureExceedsCapturable(InvalidRequest):
    code, title = "amount_exceeds_capturable", "The amount exceeds what can be captured"


class PaymentMethodWrongProvider(InvalidRequest):
    # A saved method belongs to one provider; a redirect provider (PayPal, SSLCommerz) takes none.
    code, title = "payment_method_provider_mismatch", "The payment method is not this provider's"


class ProviderNotAvailable(InvalidRequest):
    code, title = "provider_not_available", "This provider is not enabled"
