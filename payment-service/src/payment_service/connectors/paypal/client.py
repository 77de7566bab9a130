"""PayPal's thin async transport: OAuth2 token cache, PayPal-Request-Id, webhook verification."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from payment_service.connectors.paypal import protocol, webhooks
from payment_service.connectors.paypal.protocol import OrderCreate
from payment_service.connectors.provider_http import (
    CaptureOutcome,
    PaymentOutcome,
    ProviderCall,
    ProviderHttpError,
    ProviderUnreachable,
    RefundOutcome,
    WebhookRejected,
    json_body,
    send_http,
)

# A token is renewed this long before PayPal says it expires (clock skew, slow requests).
TOKEN_MARGIN_SECONDS = 60.0
_CERT_CACHE_SIZE = 32


@dataclass(frozen=True)
class PayPalConfig:
    """Where PayPal is and who we are; a stand-in is only a different `api_base`."""

    api_base: str
    client_id: str
    client_secret: SecretStr
    webhook_id: str = ""
    # "certificate": verify locally against the cert at PAYPAL-CERT-URL (no extra call);
    # "api": ask PayPal's verify-webhook-signature endpoint.
    webhook_verification: Literal["certificate", "api"] = "certificate"
    cert_hosts: Collection[str] = webhooks.PRODUCTION_CERT_HOSTS
    require_https_cert_url: bool = True
    timeout_seconds: float = 10.0


class PayPalClient:
    """Orders v2 / Payments v2 over httpx. Every mutating call carries PayPal-Request-Id.

    Methods return paygate outcomes (`PaymentOutcome`, `CaptureOutcome`, `RefundOutcome`);
    a refusal is `ProviderHttpError`, an unknown outcome `ProviderUnreachable`.
    """

    name = "paypal"

    def __init__(
        self,
        config: PayPalConfig,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(
            base_url=config.api_base.rstrip("/"), timeout=config.timeout_seconds
        )
        self._owns_http = http is None
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        self._certs: dict[str, Any] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> PayPalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- transport ------------------------------------------------------------------

    async def access_token(self) -> str:
        """An OAuth2 client-credentials token, fetched once and reused until near expiry."""
        async with self._token_lock:
            if self._token and self._clock() < self._token_expires_at:
                return self._token
            call = ProviderCall(
                "oauth2.token",
                "POST",
                "/v1/oauth2/token",
                form={"grant_type": "client_credentials"},
            )
            try:
                response = await self._http.post(
                    call.path,
                    data=dict(call.form or {}),
                    auth=(self.config.client_id, self.config.client_secret.get_secret_value()),
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise ProviderUnreachable(f"oauth2.token: {type(exc).__name__}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise ProviderUnreachable(f"oauth2.token: HTTP {response.status_code}")
            body = json_body(response, call.operation)
            if response.status_code != 200 or not body.get("access_token"):
                raise protocol.parse_error(response.status_code, body)
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 0))
            self._token_expires_at = self._clock() + max(lifetime - TOKEN_MARGIN_SECONDS, 0.0)
            return self._token

    async def send(self, call: ProviderCall) -> dict[str, Any]:
        """Send a built call with a bearer token; a 401 renews the token once."""
        for attempt in (1, 2):
            token = await self.access_token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if call.idempotency_key:
                headers["PayPal-Request-Id"] = call.idempotency_key
            response = await send_http(self._http, call, headers=headers)
            if response.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, then give up
                continue
            body = json_body(response, call.operation)
            if response.status_code >= 400:
                error = protocol.parse_error(response.status_code, body)
                if error.code == "PREVIOUS_REQUEST_IN_PROGRESS":
                    raise ProviderUnreachable(f"{call.operation}: {error.code}") from error
                raise error
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    # --- payment flows ---------------------------------------------------------------

    async def create_order(self, order: OrderCreate) -> PaymentOutcome:
        """Create an order; the outcome is requires_action with the payer's approval link."""
        outcome = protocol.parse_order(await self.send(protocol.build_create_order(order)))
        if outcome.next_action is not None:
            redirect = outcome.next_action["redirect_to_url"]
            redirect["return_url"] = order.return_url
        return outcome

    async def get_order(self, order_id: str) -> PaymentOutcome:
        return protocol.parse_order(await self.send(protocol.build_get_order(order_id)))

    async def capture_order(self, order_id: str, *, idempotency_key: str) -> PaymentOutcome:
        """Charge an approved CAPTURE order; a payer-side decline is an outcome, not an error."""
        call = protocol.build_capture_order(order_id, idempotency_key=idempotency_key)
        return await self._settle_order(order_id, call)

    async def authorize_order(self, order_id: str, *, idempotency_key: str) -> PaymentOutcome:
        """Hold funds on an approved AUTHORIZE order → requires_capture."""
        call = protocol.build_authorize_order(order_id, idempotency_key=idempotency_key)
        return await self._settle_order(order_id, call)

    async def _settle_order(self, order_id: str, call: ProviderCall) -> PaymentOutcome:
        try:
            return protocol.parse_order(await self.send(call))
        except ProviderHttpError as error:
            if error.status_code != 422:
                raise
            outcome = protocol.decline_outcome(
                error, await self.send(protocol.build_get_order(order_id))
            )
            if outcome is None:
                raise
            return outcome

    async def capture_authorization(
        self,
        authorization_id: str,
        *,
        idempotency_key: str,
        amount: int | None = None,
        currency: str | None = None,
        final_capture: bool = True,
    ) -> CaptureOutcome:
        call = protocol.build_capture_authorization(
            authorization_id,
            idempotency_key=idempotency_key,
            amount=amount,
            currency=currency,
            final_capture=final_capture,
        )
        return protocol.parse_capture(await self.send(call))

    async def void_authorization(self, authorization_id: str, *, idempotency_key: str) -> None:
        """Release the uncaptured rest; PayPal answers 204 (or the voided authorisation)."""
        await self.send(
            protocol.build_void_authorization(authorization_id, idempotency_key=idempotency_key)
        )

    async def get_authorization(self, authorization_id: str) -> dict[str, Any]:
        return await self.send(protocol.build_get_authorization(authorization_id))

    async def refund_capture(
        self,
        capture_id: str,
        *,
        idempotency_key: str,
        amount: int | None = None,
        currency: str | None = None,
        refund_id: Any = None,
    ) -> RefundOutcome:
        call = protocol.build_refund_capture(
            capture_id,
            idempotency_key=idempotency_key,
            amount=amount,
            currency=currency,
            refund_id=refund_id,
        )
        return protocol.parse_refund(await self.send(call))

    async def get_refund(self, refund_id: str) -> RefundOutcome:
        return protocol.parse_refund(await self.send(protocol.build_get_refund(refund_id)))

    # --- webhooks -------------------------------------------------------------------

    async def verify_webhook(
        self, headers: Mapping[str, str], body: bytes
    ) -> webhooks.WebhookNotice:
        """Verify one delivery (raw body bytes, as received) and say what it means.

        Raises `WebhookRejected` for anything that does not verify; `ProviderUnreachable`
        when the certificate or the verify API cannot be reached (answer 5xx: PayPal retries).
        """
        if not self.config.webhook_id:
            raise WebhookRejected("webhook_id_not_configured")
        transmission = webhooks.TransmissionHeaders.from_headers(headers)
        event = webhooks.parse_event(body)
        if self.config.webhook_verification == "api":
            call = webhooks.build_verify_signature_call(transmission, self.config.webhook_id, event)
            webhooks.parse_verify_signature_response(await self.send(call))
        else:
            key = await self._certificate_key(transmission.cert_url)
            webhooks.verify_signature(key, transmission, self.config.webhook_id, body)
        return webhooks.map_event(event)

    async def _certificate_key(self, cert_url: str) -> Any:
        webhooks.check_cert_url(
            cert_url,
            allowed_hosts=self.config.cert_hosts,
            require_https=self.config.require_https_cert_url,
        )
        cached = self._certs.get(cert_url)
        if cached is not None:
            return cached
        try:
            # no bearer token and no redirects: a redirect could leave the allowed host
            response = await self._http.get(cert_url, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"webhook cert: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ProviderUnreachable(f"webhook cert: HTTP {response.status_code}")
        if response.status_code != 200 or len(response.content) > webhooks.MAX_CERT_BYTES:
            raise WebhookRejected("cert_unavailable", f"HTTP {response.status_code}")
        key = webhooks.load_certificate(response.content)
        if len(self._certs) >= _CERT_CACHE_SIZE:
            self._certs.pop(next(iter(self._certs)))
        self._certs[cert_url] = key
        return key
