"""Stripe I/O through the official SDK's async client; no network retries inside the SDK."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import stripe

from payment_service.connectors.base import ProviderRequest, ProviderUnavailable

log = logging.getLogger("payment_service.connectors.stripe")

PAGE_SIZE = 100


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    error = exc.error.to_dict() if exc.error is not None else {}
    error.setdefault("code", exc.code)
    if isinstance(exc, stripe.CardError):
        error.setdefault("type", "card_error")
    return {"error": error}


def _target(request: ProviderRequest) -> str:
    if not request.target:
        raise ValueError(f"{request.operation} needs the PaymentIntent id")
    return request.target


class StripeTransport:
    """Sends PaymentIntent and Refund requests; finds intents and refunds by our ids in metadata."""

    def __init__(self, *, api_key: str, api_base: str, timeout: float) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout)
        # max_network_retries=0: the SDK would resend with the same idempotency key, which
        # localstripe (and any provider that ignores keys) turns into a second charge. Retries
        # are ours, after reconciliation.
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            http_client=self._http,
            max_network_retries=0,
        )

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        options: Any = {"idempotency_key": request.idempotency_key}
        params: Any = request.params
        intents = self.client.v1.payment_intents
        answer: Any
        try:
            match request.operation:
                case "payment_intents.create":
                    answer = await intents.create_async(params=params, options=options)
                case "payment_intents.capture":
                    answer = await intents.capture_async(
                        _target(request), params=params, options=options
                    )
                case "payment_intents.cancel":
                    answer = await intents.cancel_async(
                        _target(request), params=params, options=options
                    )
                case "refunds.create":
                    answer = await self.client.v1.refunds.create_async(
                        params=params, options=options
                    )
                case _:
                    raise ValueError(f"unsupported operation {request.operation}")
        except stripe.CardError as exc:
            return _error_body(exc)
        except (
            stripe.APIConnectionError,
            stripe.RateLimitError,
            stripe.AuthenticationError,
        ) as exc:
            raise ProviderUnavailable(f"{type(exc).__name__}: {exc.user_message or ''}") from exc
        except stripe.StripeError as exc:
            if exc.http_status is None or exc.http_status >= 500 or exc.http_status == 409:
                # 409: an idempotency conflict or a lock on the object: the outcome is unknown.
                raise ProviderUnavailable(f"{type(exc).__name__} {exc.http_status}") from exc
            return _error_body(exc)
        return dict(answer.to_dict())

    async def retrieve_payment(self, provider_reference: str) -> Mapping[str, Any]:
        try:
            intent = await self.client.v1.payment_intents.retrieve_async(provider_reference)
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"lookup failed: {type(exc).__name__}") from exc
        return intent.to_dict()

    async def find_refund(
        self,
        refund_id: uuid.UUID,
        *,
        provider_reference: str,
        refund_reference: str | None = None,
    ) -> Mapping[str, Any] | None:
        """The Refund whose metadata names our refund, among the PaymentIntent's refunds."""
        wanted = str(refund_id)
        params: dict[str, Any] = {"payment_intent": provider_reference, "limit": PAGE_SIZE}
        try:
            while True:
                page = await self.client.v1.refunds.list_async(params=params)  # type: ignore[arg-type]
                data = [r.to_dict() for r in page.data]
                for refund in data:
                    if (refund.get("metadata") or {}).get("refund_id") == wanted:
                        return refund
                if not page.has_more or not data:
                    return None
                params["starting_after"] = data[-1]["id"]
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"refund lookup failed: {type(exc).__name__}") from exc

    async def find_payment(
        self,
        payment_id: uuid.UUID,
        *,
        customer: str | None = None,
    ) -> Mapping[str, Any] | None:
        """The PaymentIntent whose metadata names our payment, via consistent list calls.

        Stripe's search API lags writes by up to a minute, so lists are used: filtered by the
        customer where the provider supports it, otherwise every intent (localstripe).
        """
        wanted = str(payment_id)
        try:
            found = await self._scan({"customer": customer} if customer else {}, wanted)
        except stripe.InvalidRequestError:
            if not customer:
                raise
            # localstripe rejects list filters; scan everything.
            found = await self._scan({}, wanted)
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise ProviderUnavailable(f"lookup failed: {type(exc).__name__}") from exc
        if not found:
            return None
        if len(found) > 1:
            log.error(
                "payment %s has %d PaymentIntents: %s",
                wanted,
                len(found),
                [pi.get("id") for pi in found],
            )
        rank = {"succeeded": 0, "processing": 1, "requires_capture": 2, "requires_action": 3}
        return sorted(found, key=lambda pi: rank.get(str(pi.get("status")), 9))[0]

    async def _scan(self, filters: dict[str, Any], payment_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE_SIZE, **filters}
        try:
            while True:
                page = await self.client.v1.payment_intents.list_async(params=params)  # type: ignore[arg-type]
                data = [pi.to_dict() for pi in page.data]
                found += [
                    pi for pi in data if (pi.get("metadata") or {}).get("payment_id") == payment_id
                ]
                if not page.has_more or not data:
                    return found
                params["starting_after"] = data[-1]["id"]
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise ProviderUnavailable(f"lookup failed: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
