"""Stripe connector for saved cards: translates calls and errors, keeps only what we may store.

Card numbers never pass through here: clients tokenise with Stripe and hand us a `pm_...` id.
From Stripe's answer we keep the PaymentMethod id, brand, last4 and expiry; nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe

from user_service.domain.errors import CardDeclined, InvalidPaymentMethod, ProviderUnavailable
from user_service.settings import Settings

log = logging.getLogger("user_service.stripe")

PROVIDER = "stripe"


@dataclass(frozen=True)
class CardDetails:
    provider_payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def _translate(exc: stripe.StripeError, *, action: str) -> Exception:
    """Stripe's error in our vocabulary; Stripe's own messages are shown only for card errors."""
    if isinstance(exc, stripe.CardError):
        error = exc.error
        decline_code = (error.decline_code if error else None) or exc.code or "card_declined"
        return CardDeclined(
            "The card was declined; use another card or contact your bank",
            decline_code=decline_code,
        )
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        log.warning("stripe %s failed: %s", action, type(exc).__name__)
        return ProviderUnavailable("Stripe could not be reached; try again shortly")
    if isinstance(exc, stripe.InvalidRequestError):
        return InvalidPaymentMethod("Stripe does not accept this payment method token")
    # Authentication, permission and Stripe's own 5xx: our configuration or their outage.
    log.error("stripe %s failed: %s (HTTP %s)", action, type(exc).__name__, exc.http_status)
    return ProviderUnavailable("The payment provider did not complete the request")


class StripeCards:
    """The few Stripe calls user-service makes, over the SDK's async HTTPX client."""

    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=settings.stripe_max_network_retries,
        )

    async def create_customer(self, *, user_id: str, email: str) -> str:
        try:
            customer = await self._client.v1.customers.create_async(
                params={"email": email, "metadata": {"paygate_user_id": user_id}},
                # Real Stripe returns the same customer for a retried create.
                options={"idempotency_key": f"paygate-user-{user_id}-customer"},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, action="customer create") from None
        return str(customer.id)

    async def attach_card(self, token: str, *, customer_id: str) -> CardDetails:
        """Attach a PaymentMethod (or a test token like `pm_card_visa`) to the customer."""
        try:
            method = await self._client.v1.payment_methods.attach_async(
                token, params={"customer": customer_id}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, action="payment method attach") from None
        data = method.to_dict()
        card = data.get("card")
        if data.get("type") != "card" or not isinstance(card, dict):
            raise InvalidPaymentMethod("Only card payment methods can be saved")
        details = CardDetails(
            provider_payment_method_id=str(data["id"]),
            brand=str(card.get("brand") or "unknown"),
            last4=str(card.get("last4") or "")[-4:],
            exp_month=int(card.get("exp_month") or 0),
            exp_year=int(card.get("exp_year") or 0),
        )
        if len(details.last4) != 4 or not 1 <= details.exp_month <= 12 or not details.exp_year:
            # A card we could not show the user; read defensively, localstripe omits fields.
            raise InvalidPaymentMethod("The provider returned incomplete card details")
        return details

    async def detach(self, provider_payment_method_id: str) -> None:
        try:
            await self._client.v1.payment_methods.detach_async(provider_payment_method_id)
        except stripe.InvalidRequestError:
            # Already detached or gone at Stripe: nothing left to undo there.
            return
        except stripe.StripeError as exc:
            raise _translate(exc, action="payment method detach") from None

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
