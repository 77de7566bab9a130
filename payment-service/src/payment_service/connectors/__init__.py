"""Provider connectors: each translates between our payment and one provider's API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from payment_service.connectors.base import (
    Connector,
    ConnectorResult,
    PaymentContext,
    ProviderRequest,
    ProviderTransport,
    ProviderUnavailable,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from payment_service.settings import Settings


def build_connector(
    settings: Settings, *, engine: AsyncEngine | None = None
) -> tuple[Connector, ProviderTransport]:
    """The configured connector (`PAYMENT_SERVICE_CONNECTOR`) and the transport that sends for it."""
    match settings.connector:
        case "stripe":
            from payment_service.connectors.stripe import StripeConnector, StripeTransport

            return StripeConnector(), StripeTransport(
                api_key=settings.stripe_api_key.get_secret_value(),
                api_base=settings.stripe_api_base,
                timeout=settings.stripe_timeout_seconds,
            )
        case "sandbox":
            from payment_service.connectors.sandbox import SandboxConnector, SandboxTransport

            if engine is None:
                raise ValueError("the sandbox connector records its charges in the database")
            return SandboxConnector(), SandboxTransport(
                engine=engine,
                latency_ms=settings.sandbox_latency_ms,
                failure_rate=settings.sandbox_failure_rate,
            )


__all__ = [
    "Connector",
    "ConnectorResult",
    "PaymentContext",
    "ProviderRequest",
    "ProviderTransport",
    "ProviderUnavailable",
    "build_connector",
]
