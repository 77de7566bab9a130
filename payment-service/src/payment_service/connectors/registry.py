"""Every connector paygate knows, by provider name (translation objects only: no I/O, no state)."""

from __future__ import annotations

from payment_service.connectors.base import Connector
from payment_service.connectors.sandbox import SandboxConnector
from payment_service.connectors.stripe.connector import StripeConnector

# PayPal and SSLCommerz join here, one line each, and must pass tests/test_connector_contract.py.
CONNECTORS: dict[str, Connector] = {c.name: c for c in (StripeConnector(), SandboxConnector())}


class UnknownProvider(KeyError):
    pass


def connector_for(provider: str) -> Connector:
    try:
        return CONNECTORS[provider]
    except KeyError:
        raise UnknownProvider(provider) from None
