"""The gateway's route table sends merchant-webhook paths here and provider callbacks to payments."""

from __future__ import annotations

import dataclasses
import uuid

from gateway.routes import RouteTable, routes_from_registry
from paygate_common.services import SERVICES, R


def _with_all_provider_callbacks() -> RouteTable:
    """The registry as it will be once payment-service declares PayPal and SSLCommerz too."""
    services = tuple(
        dataclasses.replace(
            s,
            routes=(
                *s.routes,
                R("/webhooks/paypal", public=True),
                R("/webhooks/sslcommerz", public=True),
            ),
        )
        if s.name == "payment" and not any(r.prefix == "/webhooks/paypal" for r in s.routes)
        else s
        for s in SERVICES
    )
    return RouteTable(routes_from_registry(services))


def test_delivery_log_settings_and_retry_go_to_notification_behind_a_jwt() -> None:
    table = RouteTable()
    delivery = uuid.uuid4()
    for path in (
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{delivery}",
        f"/api/v1/webhooks/{delivery}/retry",
        "/api/v1/webhooks/settings",
        "/api/v1/webhooks/settings/rotate-secret",
    ):
        route = table.match(path)
        assert route is not None and route.service == "notification", path
        assert route.public is False, path
        assert route.upstream_path_for(path) == path.removeprefix("/api/v1")


def test_provider_callbacks_stay_with_payment_service_and_public() -> None:
    for table in (RouteTable(), _with_all_provider_callbacks()):
        stripe = table.match("/api/v1/webhooks/stripe")
        assert stripe is not None and stripe.service == "payment" and stripe.public
    extended = _with_all_provider_callbacks()
    for provider in ("paypal", "sslcommerz"):
        route = extended.match(f"/api/v1/webhooks/{provider}")
        assert route is not None and route.service == "payment" and route.public
    # A look-alike prefix is not a provider route.
    lookalike = extended.match("/api/v1/webhooks/stripe-ish")
    assert lookalike is not None and lookalike.service == "notification"
