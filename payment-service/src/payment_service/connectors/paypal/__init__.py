"""PayPal (Orders v2): a pure protocol layer (`protocol`, `webhooks`) and a thin httpx client."""

from payment_service.connectors.paypal.client import PayPalClient, PayPalConfig
from payment_service.connectors.paypal.protocol import OrderCreate
from payment_service.connectors.paypal.webhooks import PRODUCTION_CERT_HOSTS, WebhookNotice

__all__ = ["PRODUCTION_CERT_HOSTS", "OrderCreate", "PayPalClient", "PayPalConfig", "WebhookNotice"]
