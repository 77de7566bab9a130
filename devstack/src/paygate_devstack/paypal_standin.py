"""A stand-in for PayPal's REST API (Orders v2, Payments v2, webhooks): a fake, for dev and tests.

    python -m paygate_devstack.paypal_standin --port 58430 --state-dir .paygate/paypal \
        [--webhook-url URL --webhook-id ID]

This is NOT PayPal. It speaks the documented wire protocol closely enough that
payment-service's PayPal client reaches it by configuration only (`api_base`):

- `POST /v1/oauth2/token` (HTTP basic client id/secret, client_credentials) → bearer token;
- `POST /v2/checkout/orders` (intent CAPTURE or AUTHORIZE), `GET /v2/checkout/orders/{id}`,
  `POST …/{id}/capture`, `POST …/{id}/authorize`;
- `GET|POST /v2/payments/authorizations/{id}[/capture|/void]` (partial captures with
  `final_capture`), `GET /v2/payments/captures/{id}`, `POST …/{id}/refund`,
  `GET /v2/payments/refunds/{id}`;
- `PayPal-Request-Id` on a POST: the same id on the same path replays the stored response;
- the payer approval page `GET /checkoutnow?token={order_id}` (the `payer-action` link): the
  stand-in's payer approves at once and is redirected to the order's `return_url`
  (`?token=…&PayerID=…`), as a browser or an HTTP client that follows redirects would be;
- webhooks registered with `POST /v1/notifications/webhooks` (or `--webhook-url`), sent for
  CHECKOUT.ORDER.APPROVED, PAYMENT.AUTHORIZATION.CREATED / .VOIDED, PAYMENT.CAPTURE.COMPLETED /
  .DECLINED, PAYMENT.CAPTURE.REFUNDED, signed exactly like PayPal: SHA256withRSA over
  `transmission_id|transmission_time|webhook_id|crc32(body)` with a key and self-signed
  certificate generated into the state dir and served at `PAYPAL-CERT-URL`
  (`/v1/notifications/certs/CERT-paygate-standin`); `POST /v1/notifications/verify-webhook-signature`
  and `GET /v1/notifications/webhooks-events` work too.

Test values (what the stand-in's payer does):
- an order amount whose minor units end in `02` (e.g. `10.02`), or `payer_email=cancel@…` on
  the approval link: the payer cancels and is sent to `cancel_url?token=…`;
- minor units ending in `05` (e.g. `10.05`), or `payer_email=decline@…`: the payer approves,
  but capture / authorize answers 422 `INSTRUMENT_DECLINED` (a PAYMENT.CAPTURE.DECLINED
  webhook is sent); the order stays APPROVED;
- anything else: approved by `payer@example.com` (or the given `payer_email`) and paid.

Like PayPal, an order nobody approves expires (`order_approval_seconds`, 3 hours): from then on
it is answered 404 RESOURCE_NOT_FOUND everywhere, its approval link included. `outage = True`
(or `POST /_config/outage {"down": true}`) makes every API call answer 503 SERVICE_UNAVAILABLE
until it is switched off again: PayPal unreachable, for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import secrets
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from paygate_devstack.standin_kit import Notifier, StateFile

log = logging.getLogger("paygate_devstack.paypal_standin")

CLIENT_ID = "paygate-local-client"
CLIENT_SECRET = "paygate-local-secret"
CERT_ID = "CERT-paygate-standin"
CERT_PATH = f"/v1/notifications/certs/{CERT_ID}"
DEFAULT_PAYER = "payer@example.com"
_AWAITING_PAYER = ("CREATED", "PAYER_ACTION_REQUIRED")
# PayPal keeps an order for its payer's approval this long; unapproved, it is gone after.
ORDER_APPROVAL_SECONDS = 3 * 3600
# Delays before each webhook delivery attempt (PayPal retries for days; a stand-in briefly).
WEBHOOK_RETRY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str = "") -> str:
    # PayPal ids are 17 upper-case alphanumerics
    return prefix + secrets.token_hex(9).upper()[: 17 - len(prefix)]


def _error(status: int, name: str, issue: str | None = None, description: str = "") -> JSONResponse:
    body: dict[str, Any] = {
        "name": name,
        "message": description or name.replace("_", " ").lower(),
        "debug_id": secrets.token_hex(6),
    }
    if issue:
        body["details"] = [{"issue": issue, "description": description or issue}]
    return JSONResponse(body, status_code=status)


def _unprocessable(issue: str, description: str) -> JSONResponse:
    return _error(422, "UNPROCESSABLE_ENTITY", issue, description)


def _decimal(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _fmt(amount: Decimal, like: str) -> str:
    places = len(like.split(".")[1]) if "." in like else 0
    return f"{amount:.{places}f}"


def _minor_suffix(value: str) -> str:
    return value.replace(".", "")[-2:]


class SigningIdentity:
    """The RSA key and self-signed certificate the stand-in signs webhooks with."""

    def __init__(self, directory: Path | None) -> None:
        key_path = directory / "webhook-key.pem" if directory else None
        cert_path = directory / "webhook-cert.pem" if directory else None
        if key_path and cert_path and key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if isinstance(key, rsa.RSAPrivateKey) and cert.not_valid_after_utc > datetime.now(
                UTC
            ) + timedelta(days=1):
                self.key, self.cert_pem = key, cert_path.read_bytes()
                return
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paygate PayPal stand-in")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        if key_path and cert_path:
            key_path.parent.mkdir(parents=True, exist_ok=True)
            key_path.write_bytes(
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_path.chmod(0o600)
            cert_path.write_bytes(self.cert_pem)

    def sign(self, message: bytes) -> str:
        signature = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def verify(self, message: bytes, signature_b64: str) -> bool:
        try:
            self.key.public_key().verify(
                base64.b64decode(signature_b64), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return False
        return True


class PayPalStandIn:
    """The stand-in's state (orders, authorisations, captures, refunds, webhooks) and its app."""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        token_lifetime: int = 32400,
        webhooks: dict[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
        order_approval_seconds: float = ORDER_APPROVAL_SECONDS,
    ) -> None:
        self.order_approval_seconds = order_approval_seconds
        # True: every API call answers 503 (PayPal unreachable; tests flip it).
        self.outage = False
        self.state_dir = Path(state_dir) if state_dir else None
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.identity = SigningIdentity(self.state_dir)
        self.tokens: dict[str, datetime] = {}
        self.token_requests = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.replays: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.notifier = Notifier(WEBHOOK_RETRY_DELAYS, http)
        self.deliveries = self.notifier.deliveries
        self._in_flight: set[str] = set()
        # seconds a mutating call takes (tests: overlapping retries of one PayPal-Request-Id)
        self.processing_delay = 0.0
        self._state = StateFile(self.state_dir, self, self._PERSISTED)
        self._state.load()
        for webhook_id, url in (webhooks or {}).items():
            self.webhooks[webhook_id] = {
                "id": webhook_id,
                "url": url,
                "event_types": [{"name": "*"}],
            }
        self.app = Starlette(routes=self._routes())

    # --- persistence (so `make run` keeps its orders across restarts) -------------------

    _PERSISTED = ("orders", "authorizations", "captures", "refunds", "replays", "webhooks")

    # --- plumbing ---------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/v1/oauth2/token", self._reachable(self.token), methods=["POST"]),
            Route("/_config/outage", self.set_outage, methods=["POST"]),
            Route("/v2/checkout/orders", self._mutating(self.create_order), methods=["POST"]),
            Route("/v2/checkout/orders/{id}", self._authed(self.get_order), methods=["GET"]),
            Route(
                "/v2/checkout/orders/{id}/capture",
                self._mutating(self.capture_order),
                methods=["POST"],
            ),
            Route(
                "/v2/checkout/orders/{id}/authorize",
                self._mutating(self.authorize_order),
                methods=["POST"],
            ),
            Route("/checkoutnow", self.approval_page, methods=["GET"]),
            Route(
                "/v2/payments/authorizations/{id}",
                self._authed(self.get_authorization),
                methods=["GET"],
            ),
            Route(
                "/v2/payments/authorizations/{id}/capture",
                self._mutating(self.capture_authorization),
                methods=["POST"],
            ),
            Route(
                "/v2/payments/authorizations/{id}/void",
                self._mutating(self.void_authorization),
                methods=["POST"],
            ),
            Route("/v2/payments/captures/{id}", self._authed(self.get_capture), methods=["GET"]),
            Route(
                "/v2/payments/captures/{id}/refund",
                self._mutating(self.refund_capture),
                methods=["POST"],
            ),
            Route("/v2/payments/refunds/{id}", self._authed(self.get_refund), methods=["GET"]),
            Route(CERT_PATH, self.certificate, methods=["GET"]),
            Route(
                "/v1/notifications/webhooks",
                self._authed(self.webhooks_endpoint),
                methods=["GET", "POST"],
            ),
            Route(
                "/v1/notifications/webhooks/{id}",
                self._authed(self.delete_webhook),
                methods=["DELETE"],
            ),
            Route(
                "/v1/notifications/webhooks-events",
                self._authed(self.list_events),
                methods=["GET"],
            ),
            Route(
                "/v1/notifications/verify-webhook-signature",
                self._authed(self.verify_webhook_signature),
                methods=["POST"],
            ),
        ]

    Handler = Callable[[Request], Any]

    def _reachable(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if self.outage:
                return _error(503, "SERVICE_UNAVAILABLE", description="Service Unavailable.")
            response: Response = await handler(request)
            return response

        return endpoint

    async def set_outage(self, request: Request) -> Response:
        body = await self._body(request) or {}
        self.outage = bool(body.get("down"))
        return JSONResponse({"down": self.outage})

    def _authed(self, handler: Handler) -> Handler:
        @self._reachable
        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            token = header[7:] if header.lower().startswith("bearer ") else ""
            expires = self.tokens.get(token)
            if expires is None or expires < datetime.now(UTC):
                return JSONResponse(
                    {
                        "error": "invalid_token",
                        "error_description": "Token signature verification failed",
                    },
                    status_code=401,
                )
            result: Response = await handler(request)
            return result

        return endpoint

    def _mutating(self, handler: Handler) -> Handler:
        """Bearer auth plus PayPal-Request-Id: a repeated id replays the stored answer, and
        one that arrives while the first is still running gets 409 PREVIOUS_REQUEST_IN_PROGRESS."""

        async def endpoint(request: Request) -> Response:
            request_id = request.headers.get("paypal-request-id")
            if not request_id:
                response: Response = await handler(request)
                return response
            key = f"{request.url.path}|{request_id}"
            if key in self.replays:
                stored = self.replays[key]
                return _json_or_empty(stored["body"], stored["status"])
            if key in self._in_flight:
                return _error(
                    409,
                    "RESOURCE_CONFLICT",
                    "PREVIOUS_REQUEST_IN_PROGRESS",
                    "A previous request on this resource is currently in progress.",
                )
            self._in_flight.add(key)
            try:
                if self.processing_delay:
                    await asyncio.sleep(self.processing_delay)
                response = await handler(request)
                if response.status_code < 500:
                    body = json.loads(bytes(response.body)) if response.body else None
                    self.replays[key] = {"status": response.status_code, "body": body}
                    self._state.save()
            finally:
                self._in_flight.discard(key)
            return response

        return self._authed(endpoint)

    @staticmethod
    async def _body(request: Request) -> dict[str, Any] | None:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- OAuth ------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            scheme, encoded = header.split(" ", 1)
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            scheme, client_id, secret = "", "", ""
        if scheme.lower() != "basic" or (client_id, secret) != (
            self.client_id,
            self.client_secret,
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
                status_code=401,
            )
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
                status_code=400,
            )
        self.token_requests += 1
        token = "A21AA" + secrets.token_urlsafe(32)
        self.tokens[token] = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        return JSONResponse(
            {
                "scope": "https://uri.paypal.com/services/payments/payment/authcapture "
                "https://uri.paypal.com/services/payments/refund",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-PAYGATE-STANDIN",
                "expires_in": self.token_lifetime,
                "nonce": f"{_now()}{secrets.token_hex(8)}",
            }
        )

    # --- orders -----------------------------------------------------------------------

    async def create_order(self, request: Request) -> Response:
        body = await self._body(request)
        if body is None:
            return _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON", "body is not JSON")
        intent = body.get("intent")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "intent")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            return _error(
                400, "INVALID_REQUEST", "INVALID_ARRAY_MAX_ITEMS", "one purchase unit expected"
            )
        amount = units[0].get("amount") or {}
        value = _decimal(amount.get("value"))
        currency = str(amount.get("currency_code", ""))
        if value is None or value == 0 or len(currency) != 3 or not currency.isupper():
            return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "amount")
        paypal = (body.get("payment_source") or {}).get("paypal")
        experience = (
            (paypal or {}).get("experience_context") or body.get("application_context") or {}
        )
        order_id = _new_id()
        now = _now()
        self.orders[order_id] = {
            "id": order_id,
            "intent": intent,
            # PayPal answers the payment_source flow with PAYER_ACTION_REQUIRED, legacy with CREATED
            "status": "PAYER_ACTION_REQUIRED" if paypal is not None else "CREATED",
            "link_rel": "payer-action" if paypal is not None else "approve",
            "return_url": experience.get("return_url"),
            "cancel_url": experience.get("cancel_url"),
            "purchase_unit": {
                "reference_id": units[0].get("reference_id", "default"),
                "custom_id": units[0].get("custom_id"),
                "invoice_id": units[0].get("invoice_id"),
                "description": units[0].get("description"),
                "amount": {"currency_code": currency, "value": str(amount["value"])},
            },
            "payer": None,
            "authorization_ids": [],
            "capture_ids": [],
            "create_time": now,
            "update_time": now,
            "approve_before": (
                datetime.now(UTC) + timedelta(seconds=self.order_approval_seconds)
            ).isoformat(),
        }
        self._state.save()
        return JSONResponse(self._order_view(order_id, self._base(request)), status_code=201)

    def _live_order(self, order_id: str) -> dict[str, Any] | None:
        """The order, unless it never existed or expired waiting for its payer (PayPal then
        answers 404 for it, as for an id it never issued)."""
        order = self.orders.get(order_id)
        if order is None:
            return None
        deadline = order.get("approve_before")
        if (
            order["status"] in _AWAITING_PAYER
            and deadline
            and datetime.fromisoformat(deadline) <= datetime.now(UTC)
        ):
            return None
        return order

    def _order_view(self, order_id: str, base: str) -> dict[str, Any]:
        order = self.orders[order_id]
        unit: dict[str, Any] = {k: v for k, v in order["purchase_unit"].items() if v is not None}
        unit["payee"] = {"merchant_id": "PAYGATESTANDIN", "email_address": "merchant@example.com"}
        payments: dict[str, Any] = {}
        if order["authorization_ids"]:
            payments["authorizations"] = [
                self._authorization_view(a, base) for a in order["authorization_ids"]
            ]
        if order["capture_ids"]:
            payments["captures"] = [self._capture_view(c, base) for c in order["capture_ids"]]
            refunds = [r for c in order["capture_ids"] for r in self.captures[c]["refund_ids"]]
            if refunds:
                payments["refunds"] = [self._refund_view(r, base) for r in refunds]
        if payments:
            unit["payments"] = payments
        href = f"{base}/v2/checkout/orders/{order_id}"
        links = [{"href": href, "rel": "self", "method": "GET"}]
        if order["status"] in _AWAITING_PAYER:
            links.append(
                {
                    "href": f"{base}/checkoutnow?token={order_id}",
                    "rel": order["link_rel"],
                    "method": "GET",
                }
            )
        if order["status"] == "APPROVED":
            action = "capture" if order["intent"] == "CAPTURE" else "authorize"
            links.append({"href": f"{href}/{action}", "rel": action, "method": "POST"})
        view: dict[str, Any] = {
            "id": order_id,
            "intent": order["intent"],
            "status": order["status"],
            "purchase_units": [unit],
            "create_time": order["create_time"],
            "update_time": order["update_time"],
            "links": links,
        }
        if order["payer"]:
            view["payer"] = order["payer"]
            view["payment_source"] = {
                "paypal": {
                    "email_address": order["payer"]["email_address"],
                    "account_id": order["payer"]["payer_id"],
                    "account_status": "VERIFIED",
                }
            }
        return view

    async def get_order(self, request: Request) -> Response:
        order_id = request.path_params["id"]
        if self._live_order(order_id) is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "order not found")
        return JSONResponse(self._order_view(order_id, self._base(request)))

    async def approval_page(self, request: Request) -> Response:
        """The payer's side: approve (or cancel) at once and go back to the merchant."""
        order_id = request.query_params.get("token", "")
        order = self._live_order(order_id)
        if order is None:
            return PlainTextResponse("unknown order", status_code=404)
        email = request.query_params.get("payer_email") or DEFAULT_PAYER
        suffix = _minor_suffix(order["purchase_unit"]["amount"]["value"])
        if email.startswith("cancel") or suffix == "02":
            return RedirectResponse(_with_query(order["cancel_url"], token=order_id), 302)
        if order["status"] in _AWAITING_PAYER:
            payer_id = "PAYER" + secrets.token_hex(6).upper()
            order["payer"] = {
                "email_address": email,
                "payer_id": payer_id,
                "name": {"given_name": "Test", "surname": "Payer"},
            }
            order["declines"] = email.startswith("decline") or suffix == "05"
            order["status"] = "APPROVED"
            order["update_time"] = _now()
            self._state.save()
            base = self._base(request)
            self._emit(
                "CHECKOUT.ORDER.APPROVED",
                "checkout-order",
                self._order_view(order_id, base),
                "An order has been approved by buyer",
                base,
            )
        payer_id = (order.get("payer") or {}).get("payer_id", "")
        return RedirectResponse(
            _with_query(order["return_url"], token=order_id, PayerID=payer_id), 302
        )

    def _settle_precheck(
        self, order_id: str, intent: str
    ) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        order = self._live_order(order_id)
        if order is None:
            return None, _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "order not found")
        if order["intent"] != intent:
            return None, _unprocessable(
                "ACTION_DOES_NOT_MATCH_INTENT",
                f"Order was created with an intent to {order['intent']}",
            )
        if order["status"] == "COMPLETED":
            issue = "ORDER_ALREADY_CAPTURED" if intent == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED"
            return None, _unprocessable(issue, "Order already settled")
        if order["status"] != "APPROVED":
            return None, _unprocessable(
                "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment"
            )
        return order, None

    def _decline(self, order: dict[str, Any], base: str) -> JSONResponse | None:
        if not order.get("declines"):
            return None
        self._emit(
            "PAYMENT.CAPTURE.DECLINED",
            "capture",
            {
                "id": _new_id(),
                "status": "DECLINED",
                "amount": order["purchase_unit"]["amount"],
                "custom_id": order["purchase_unit"].get("custom_id"),
                "supplementary_data": {"related_ids": {"order_id": order["id"]}},
            },
            "A payment capture has been declined",
            base,
        )
        response = _unprocessable(
            "INSTRUMENT_DECLINED",
            "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
        )
        body = json.loads(bytes(response.body))
        body["links"] = [
            {"href": f"{base}/checkoutnow?token={order['id']}", "rel": "redirect", "method": "GET"}
        ]
        return JSONResponse(body, status_code=422)

    async def capture_order(self, request: Request) -> Response:
        base = self._base(request)
        order, refusal = self._settle_precheck(request.path_params["id"], "CAPTURE")
        if refusal is not None or order is None:
            return refusal or _error(500, "INTERNAL_SERVER_ERROR")
        declined = self._decline(order, base)
        if declined is not None:
            return declined
        unit = order["purchase_unit"]
        capture_id = self._new_capture(order, None, unit["amount"], final_capture=True)
        order["status"] = "COMPLETED"
        order["update_time"] = _now()
        self._state.save()
        self._emit(
            "PAYMENT.CAPTURE.COMPLETED",
            "capture",
            self._capture_view(capture_id, base),
            f"Payment completed for {unit['amount']['value']} {unit['amount']['currency_code']}",
            base,
        )
        return JSONResponse(self._order_view(order["id"], base), status_code=201)

    async def authorize_order(self, request: Request) -> Response:
        base = self._base(request)
        order, refusal = self._settle_precheck(request.path_params["id"], "AUTHORIZE")
        if refusal is not None or order is None:
            return refusal or _error(500, "INTERNAL_SERVER_ERROR")
        declined = self._decline(order, base)
        if declined is not None:
            return declined
        auth_id = _new_id()
        now = datetime.now(UTC)
        self.authorizations[auth_id] = {
            "id": auth_id,
            "order_id": order["id"],
            "status": "CREATED",
            "amount": dict(order["purchase_unit"]["amount"]),
            "custom_id": order["purchase_unit"].get("custom_id"),
            "invoice_id": order["purchase_unit"].get("invoice_id"),
            "captured": "0",
            "capture_ids": [],
            "expiration_time": (now + timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "create_time": _now(),
            "update_time": _now(),
        }
        order["authorization_ids"].append(auth_id)
        order["status"] = "COMPLETED"
        order["update_time"] = _now()
        self._state.save()
        amount = order["purchase_unit"]["amount"]
        self._emit(
            "PAYMENT.AUTHORIZATION.CREATED",
            "authorization",
            self._authorization_view(auth_id, base),
            f"A payment authorization was created for {amount['value']} {amount['currency_code']}",
            base,
        )
        return JSONResponse(self._order_view(order["id"], base), status_code=201)

    # --- authorizations and captures ---------------------------------------------------

    def _authorization_view(self, auth_id: str, base: str) -> dict[str, Any]:
        auth = self.authorizations[auth_id]
        href = f"{base}/v2/payments/authorizations/{auth_id}"
        view = {
            k: auth[k]
            for k in ("id", "status", "amount", "custom_id", "invoice_id", "expiration_time")
            if auth.get(k) is not None
        }
        view.update(
            {
                "seller_protection": {"status": "ELIGIBLE"},
                "supplementary_data": {"related_ids": {"order_id": auth["order_id"]}},
                "create_time": auth["create_time"],
                "update_time": auth["update_time"],
                "links": [
                    {"href": href, "rel": "self", "method": "GET"},
                    {"href": f"{href}/capture", "rel": "capture", "method": "POST"},
                    {"href": f"{href}/void", "rel": "void", "method": "POST"},
                    {
                        "href": f"{base}/v2/checkout/orders/{auth['order_id']}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
            }
        )
        return view

    def _new_capture(
        self,
        order: dict[str, Any],
        auth_id: str | None,
        amount: dict[str, str],
        *,
        final_capture: bool,
        invoice_id: str | None = None,
    ) -> str:
        capture_id = _new_id()
        related = {"order_id": order["id"]}
        if auth_id:
            related["authorization_id"] = auth_id
        self.captures[capture_id] = {
            "id": capture_id,
            "order_id": order["id"],
            "related": related,
            "status": "COMPLETED",
            "amount": dict(amount),
            "final_capture": final_capture,
            "custom_id": order["purchase_unit"].get("custom_id"),
            "invoice_id": invoice_id or order["purchase_unit"].get("invoice_id"),
            "refunded": "0",
            "refund_ids": [],
            "create_time": _now(),
            "update_time": _now(),
        }
        order["capture_ids"].append(capture_id)
        return capture_id

    def _capture_view(self, capture_id: str, base: str) -> dict[str, Any]:
        capture = self.captures[capture_id]
        href = f"{base}/v2/payments/captures/{capture_id}"
        value = Decimal(capture["amount"]["value"])
        fee = (value * Decimal("0.0349") + Decimal("0.49")).quantize(Decimal("0.01"))
        fee = min(fee, value)
        like = capture["amount"]["value"]
        currency = capture["amount"]["currency_code"]
        view = {
            k: capture[k]
            for k in ("id", "status", "amount", "final_capture", "custom_id", "invoice_id")
            if capture.get(k) is not None
        }
        view.update(
            {
                "seller_protection": {"status": "ELIGIBLE"},
                "seller_receivable_breakdown": {
                    "gross_amount": capture["amount"],
                    "paypal_fee": {"currency_code": currency, "value": _fmt(fee, like)},
                    "net_amount": {"currency_code": currency, "value": _fmt(value - fee, like)},
                },
                "supplementary_data": {"related_ids": capture["related"]},
                "create_time": capture["create_time"],
                "update_time": capture["update_time"],
                "links": [
                    {"href": href, "rel": "self", "method": "GET"},
                    {"href": f"{href}/refund", "rel": "refund", "method": "POST"},
                    {
                        "href": f"{base}/v2/checkout/orders/{capture['order_id']}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
            }
        )
        return view

    async def get_authorization(self, request: Request) -> Response:
        auth_id = request.path_params["id"]
        if auth_id not in self.authorizations:
            return _error(
                404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "authorization not found"
            )
        return JSONResponse(self._authorization_view(auth_id, self._base(request)))

    async def capture_authorization(self, request: Request) -> Response:
        base = self._base(request)
        auth = self.authorizations.get(request.path_params["id"])
        if auth is None:
            return _error(
                404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "authorization not found"
            )
        body = await self._body(request)
        if body is None:
            return _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON", "body is not JSON")
        if auth["status"] == "VOIDED":
            return _unprocessable(
                "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured"
            )
        if auth["status"] == "CAPTURED":
            return _unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has already been captured"
            )
        authorized = Decimal(auth["amount"]["value"])
        remaining = authorized - Decimal(auth["captured"])
        like = auth["amount"]["value"]
        requested = body.get("amount")
        if requested is None:
            value = remaining
        else:
            if requested.get("currency_code") != auth["amount"]["currency_code"]:
                return _unprocessable(
                    "CURRENCY_MISMATCH", "Currency of capture must match authorization"
                )
            parsed = _decimal(requested.get("value"))
            if parsed is None or parsed == 0:
                return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "amount")
            value = parsed
        if value > remaining:
            return _unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds allowable limit"
            )
        final_capture = bool(body.get("final_capture", False))
        order = self.orders[auth["order_id"]]
        capture_id = self._new_capture(
            order,
            auth["id"],
            {"currency_code": auth["amount"]["currency_code"], "value": _fmt(value, like)},
            final_capture=final_capture,
            invoice_id=body.get("invoice_id"),
        )
        auth["capture_ids"].append(capture_id)
        auth["captured"] = _fmt(Decimal(auth["captured"]) + value, like)
        auth["status"] = "CAPTURED" if final_capture or value == remaining else "PARTIALLY_CAPTURED"
        auth["update_time"] = _now()
        self._state.save()
        view = self._capture_view(capture_id, base)
        self._emit(
            "PAYMENT.CAPTURE.COMPLETED",
            "capture",
            view,
            f"Payment completed for {view['amount']['value']} {view['amount']['currency_code']}",
            base,
        )
        return JSONResponse(view, status_code=201)

    async def void_authorization(self, request: Request) -> Response:
        base = self._base(request)
        auth = self.authorizations.get(request.path_params["id"])
        if auth is None:
            return _error(
                404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "authorization not found"
            )
        if auth["status"] == "VOIDED":
            return _unprocessable("AUTHORIZATION_VOIDED", "Authorization has already been voided")
        if auth["status"] == "CAPTURED":
            return _unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been captured in full"
            )
        auth["status"] = "VOIDED"
        auth["update_time"] = _now()
        self._state.save()
        view = self._authorization_view(auth["id"], base)
        self._emit(
            "PAYMENT.AUTHORIZATION.VOIDED",
            "authorization",
            view,
            "A payment authorization was voided",
            base,
        )
        if request.headers.get("prefer") == "return=representation":
            return JSONResponse(view)
        return Response(status_code=204)

    async def get_capture(self, request: Request) -> Response:
        capture_id = request.path_params["id"]
        if capture_id not in self.captures:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "capture not found")
        return JSONResponse(self._capture_view(capture_id, self._base(request)))

    # --- refunds ----------------------------------------------------------------------

    def _refund_view(self, refund_id: str, base: str) -> dict[str, Any]:
        refund = self.refunds[refund_id]
        view = {
            k: refund[k]
            for k in ("id", "status", "amount", "custom_id", "invoice_id", "note_to_payer")
            if refund.get(k) is not None
        }
        view.update(
            {
                "create_time": refund["create_time"],
                "update_time": refund["update_time"],
                "links": [
                    {
                        "href": f"{base}/v2/payments/refunds/{refund_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{base}/v2/payments/captures/{refund['capture_id']}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
            }
        )
        return view

    async def refund_capture(self, request: Request) -> Response:
        base = self._base(request)
        capture = self.captures.get(request.path_params["id"])
        if capture is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "capture not found")
        body = await self._body(request)
        if body is None:
            return _error(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON", "body is not JSON")
        like = capture["amount"]["value"]
        remaining = Decimal(like) - Decimal(capture["refunded"])
        if remaining <= 0:
            return _unprocessable(
                "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded"
            )
        requested = body.get("amount")
        if requested is None:
            value = remaining
        else:
            if requested.get("currency_code") != capture["amount"]["currency_code"]:
                return _unprocessable(
                    "REFUND_CURRENCY_MISMATCH", "Refund must be in the capture's currency"
                )
            parsed = _decimal(requested.get("value"))
            if parsed is None or parsed == 0:
                return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "amount")
            value = parsed
        if value > remaining:
            return _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has not yet been refunded",
            )
        refund_id = _new_id()
        self.refunds[refund_id] = {
            "id": refund_id,
            "capture_id": capture["id"],
            "status": "COMPLETED",
            "amount": {
                "currency_code": capture["amount"]["currency_code"],
                "value": _fmt(value, like),
            },
            "custom_id": capture.get("custom_id"),
            "invoice_id": body.get("invoice_id"),
            "note_to_payer": body.get("note_to_payer"),
            "create_time": _now(),
            "update_time": _now(),
        }
        capture["refund_ids"].append(refund_id)
        capture["refunded"] = _fmt(Decimal(capture["refunded"]) + value, like)
        capture["status"] = "REFUNDED" if value == remaining else "PARTIALLY_REFUNDED"
        capture["update_time"] = _now()
        self._state.save()
        view = self._refund_view(refund_id, base)
        self._emit(
            "PAYMENT.CAPTURE.REFUNDED",
            "refund",
            view,
            f"A {view['amount']['value']} {view['amount']['currency_code']} capture payment was refunded",
            base,
        )
        return JSONResponse(view, status_code=201)

    async def get_refund(self, request: Request) -> Response:
        refund_id = request.path_params["id"]
        if refund_id not in self.refunds:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "refund not found")
        return JSONResponse(self._refund_view(refund_id, self._base(request)))

    # --- webhooks ---------------------------------------------------------------------

    async def certificate(self, request: Request) -> Response:
        return Response(self.identity.cert_pem, media_type="application/x-pem-file")

    async def webhooks_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"webhooks": list(self.webhooks.values())})
        body = await self._body(request) or {}
        url = body.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            return _error(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "url")
        if any(w["url"] == url for w in self.webhooks.values()):
            return _error(400, "WEBHOOK_URL_ALREADY_EXISTS", None, "Webhook URL already exists")
        webhook_id = _new_id("WH")
        self.webhooks[webhook_id] = {
            "id": webhook_id,
            "url": url,
            "event_types": body.get("event_types") or [{"name": "*"}],
        }
        self._state.save()
        return JSONResponse(self.webhooks[webhook_id], status_code=201)

    async def delete_webhook(self, request: Request) -> Response:
        if self.webhooks.pop(request.path_params["id"], None) is None:
            return _error(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "webhook not found")
        self._state.save()
        return Response(status_code=204)

    async def list_events(self, request: Request) -> Response:
        events = sorted(self.events.values(), key=lambda e: e["event"]["create_time"], reverse=True)
        return JSONResponse({"events": [e["event"] for e in events]})

    async def verify_webhook_signature(self, request: Request) -> Response:
        """PayPal's own check: signature, cert and webhook id as PayPal would judge them."""
        body = await self._body(request) or {}
        stored = self.events.get(str((body.get("webhook_event") or {}).get("id")))
        ok = (
            stored is not None
            and stored["event"] == body.get("webhook_event")
            and body.get("webhook_id") in self.webhooks
            and body.get("auth_algo") == "SHA256withRSA"
            and urlsplit(str(body.get("cert_url", ""))).path == CERT_PATH
            and self.identity.verify(
                _signed_message(
                    str(body.get("transmission_id")),
                    str(body.get("transmission_time")),
                    str(body.get("webhook_id")),
                    stored["body"].encode(),
                ),
                str(body.get("transmission_sig", "")),
            )
        )
        return JSONResponse({"verification_status": "SUCCESS" if ok else "FAILURE"})

    def _emit(
        self, event_type: str, resource_type: str, resource: dict[str, Any], summary: str, base: str
    ) -> None:
        event_id = "WH-" + secrets.token_hex(8).upper() + "-" + secrets.token_hex(8).upper()
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": resource,
            "links": [
                {
                    "href": f"{base}/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                }
            ],
        }
        body = json.dumps(event)
        self.events[event_id] = {"event": event, "body": body}
        for webhook in list(self.webhooks.values()):
            names = {t.get("name") for t in webhook.get("event_types", [])}
            if "*" in names or event_type in names:
                self.notifier.send(
                    webhook["url"],
                    {"webhook_id": webhook["id"], "event_id": event_id, "event_type": event_type},
                    partial(self._webhook_request, webhook["id"], body, base),
                )

    def _webhook_request(self, webhook_id: str, body: str, base: str) -> dict[str, Any]:
        return {"content": body.encode(), "headers": self.signed_headers(webhook_id, body, base)}

    def signed_headers(self, webhook_id: str, body: str, base: str) -> dict[str, str]:
        """The PAYPAL-* headers of one delivery of `body` to webhook `webhook_id`."""
        transmission_id = str(uuid.uuid4())
        transmission_time = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        message = _signed_message(transmission_id, transmission_time, webhook_id, body.encode())
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": self.identity.sign(message),
            "PAYPAL-CERT-URL": f"{base}{CERT_PATH}",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "User-Agent": "PayPal/AUHD-214.0-58844013",
        }

    def cancel_deliveries(self) -> None:
        self.notifier.cancel()

    async def drain(self) -> None:
        """Wait for webhook deliveries in flight (tests, shutdown)."""
        await self.notifier.drain()


def _signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def _json_or_empty(body: Any, status: int) -> Response:
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status_code=status)


def _with_query(url: str | None, **params: str) -> str:
    if not url:
        return "about:blank"
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.paypal_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-id", default="WH-PAYGATE-LOCAL")
    args = parser.parse_args(argv)
    import uvicorn

    standin = PayPalStandIn(
        state_dir=args.state_dir,
        webhooks={args.webhook_id: args.webhook_url} if args.webhook_url else None,
    )
    uvicorn.run(standin.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
