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


def build_connectors(
    settings: Settings, *, engine: AsyncEngine | None = None
) -> dict[str, tuple[Connector, ProviderTransport]]:
    """Every provider's connector and transport: payments of a provider that is no longer
    enabled for new payments must still be captured, voided and refunded through it."""
    providers = ("stripe", "paypal", "sslcommerz") + (("sandbox",) if engine is not None else ())
    return {name: build_connector(settings, engine=engine, provider=name) for name in providers}


def build_connector(
    settings: Settings, *, engine: AsyncEngine | None = None, provider: str | None = None
) -> tuple[Connector, ProviderTransport]:
    """One provider's connector (default: `PAYMENT_SERVICE_CONNECTOR`) and its transport."""
    match provider or settings.connector:
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
        case "paypal":
            from payment_service.connectors.paypal import PayPalClient, PayPalConfig
            from payment_service.connectors.paypal.connector import (
                PayPalConnector,
                PayPalTransport,
            )

            return PayPalConnector(), PayPalTransport(
                PayPalClient(
                    PayPalConfig(
                        api_base=settings.paypal_api_base,
                        client_id=settings.paypal_client_id,
                        client_secret=settings.paypal_client_secret,
                        webhook_id=settings.paypal_webhook_id,
                        webhook_verification=settings.paypal_webhook_verification,
                        cert_hosts=frozenset(settings.paypal_webhook_cert_hosts),
                        require_https_cert_url=settings.paypal_webhook_require_https,
                        timeout_seconds=settings.paypal_timeout_seconds,
                    )
                )
            )
        case "sslcommerz":
            from payment_service.connectors.sslcommerz import SSLCommerzClient, SSLCommerzConfig
            from payment_service.connectors.sslcommerz.connector import (
                SSLCommerzConnector,
                SSLCommerzTransport,
            )

            return SSLCommerzConnector(), SSLCommerzTransport(
                SSLCommerzClient(
                    SSLCommerzConfig(
                        api_base=settings.sslcommerz_api_base,
                        store_id=settings.sslcommerz_store_id,
                        store_password=settings.sslcommerz_store_password,
                        timeout_seconds=settings.sslcommerz_timeout_seconds,
                    )
                )
            )
        case other:
            raise ValueError(f"no connector for provider {other!r}")


__all__ = [
    "Connector",
    "ConnectorResult",
    "PaymentContext",
    "ProviderRequest",
    "ProviderTransport",
    "ProviderUnavailable",
    "build_connector",
    "build_connectors",
]
