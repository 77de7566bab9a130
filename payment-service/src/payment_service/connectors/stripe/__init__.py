"""The Stripe connector (translation) and its transport (the official SDK's async client)."""

from payment_service.connectors.stripe.connector import StripeConnector
from payment_service.connectors.stripe.transport import StripeTransport

__all__ = ["StripeConnector", "StripeTransport"]
