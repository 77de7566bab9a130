"""SSLCommerz (v4): a pure protocol layer (`protocol`) and a thin httpx client; no manual capture."""

from payment_service.connectors.sslcommerz.client import (
    LIVE_API_BASE,
    SANDBOX_API_BASE,
    SSLCommerzClient,
    SSLCommerzConfig,
)
from payment_service.connectors.sslcommerz.protocol import Customer, ExpectedPayment, SessionCreate

__all__ = [
    "LIVE_API_BASE",
    "SANDBOX_API_BASE",
    "Customer",
    "ExpectedPayment",
    "SSLCommerzClient",
    "SSLCommerzConfig",
    "SessionCreate",
]
