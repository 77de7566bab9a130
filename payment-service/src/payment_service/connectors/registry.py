"""Every connector paygate knows, by provider name (translation objects only: no I/O, no state)."""

from __future__ import annotations

from payment_service.connectors.base import Connector
from payment_service.connectors.paypal.connector import PayPalConnector
from payment_service.connectors.sandbox import SandboxConnector
from payment_service.connectors.sslcommerz.connector import SSLCommerzConnector
from payment_service.connectors.stripe.connector import StripeConnector

# Each must pass tests/test_connector_contract.py.
CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (StripeConnector(), SandboxConnector(), PayPalConnector(), SSLCommerzConnector())
}


class UnknownProvider(KeyError):
    pass


def connector_for(provider: str) -> Connector:
    try:
        return CONNECTORS[provider]
    except KeyError:
        raise UnknownProvider(provider) from None
