"""SSLCommerz's thin async transport: sessions, IPN checks (signature AND validation API), refunds."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr

from paygate_common.events import PaymentStatus
from payment_service.connectors.provider_http import (
    PaymentOutcome,
    ProviderCall,
    ProviderHttpError,
    RefundOutcome,
    WebhookRejected,
    json_body,
    send_http,
)
from payment_service.connectors.sslcommerz import protocol
from payment_service.connectors.sslcommerz.protocol import ExpectedPayment, SessionCreate

SANDBOX_API_BASE = "https://sandbox.sslcommerz.com"
LIVE_API_BASE = "https://securepay.sslcommerz.com"


@dataclass(frozen=True)
class SSLCommerzConfig:
    """Store credentials and where SSLCommerz is; a stand-in is only a different `api_base`."""

    api_base: str
    store_id: str
    store_password: SecretStr
    timeout_seconds: float = 15.0


class SSLCommerzClient:
    """SSLCommerz v4 over httpx. Nothing is paid until the IPN's signature verifies AND the
    validation API confirms amount, currency and tran_id (`confirm_payment`)."""

    name = "sslcommerz"
    supports_manual_capture = False

    def __init__(self, config: SSLCommerzConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(
            base_url=config.api_base.rstrip("/"), timeout=config.timeout_seconds
        )
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> SSLCommerzClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def _credentials(self) -> dict[str, str]:
        return {
            "store_id": self.config.store_id,
            "store_password": self.config.store_password.get_secret_value(),
        }

    async def send(self, call: ProviderCall) -> dict[str, Any]:
        """Send a built call; SSLCommerz answers 200 even for refusals (read the body)."""
        response = await send_http(self._http, call, headers={"Accept": "application/json"})
        body = json_body(response, call.operation)
        if response.status_code >= 400:
            raise ProviderHttpError(
                response.status_code,
                f"http_{response.status_code}",
                str(body.get("failedreason") or body.get("errorReason") or ""),
                body=body,
            )
        return body

    # --- one-step payments ---------------------------------------------------------------

    async def create_session(self, session: SessionCreate) -> PaymentOutcome:
        """A hosted session; the outcome is requires_action with the GatewayPageURL."""
        call = protocol.build_session_init(session, **self._credentials)
        return protocol.parse_session_init(await self.send(call), session)

    async def confirm_payment(
        self, fields: Mapping[str, str], expected: ExpectedPayment
    ) -> PaymentOutcome:
        """An IPN (or the success_url POST): verify_sign, then the validation API, both matched
        against our payment. Raises `WebhookRejected` for anything that does not check out."""
        protocol.check_ipn_signature(fields, self.config.store_password.get_secret_value())
        if fields.get("store_id") and fields["store_id"] != self.config.store_id:
            raise WebhookRejected("store_id_mismatch", str(fields["store_id"]))
        claimed = protocol.ipn_outcome(fields, expected)
        if claimed.status is not PaymentStatus.SUCCEEDED:
            return claimed  # a signed failure/cancel needs no second opinion to stop a payment
        val_id = fields.get("val_id")
        if not val_id:
            raise WebhookRejected("missing_val_id")
        return await self.validate(str(val_id), expected)

    async def validate(self, val_id: str, expected: ExpectedPayment) -> PaymentOutcome:
        """SSLCommerz's validation API answer for `val_id`, checked against our payment."""
        call = protocol.build_validation(val_id, **self._credentials)
        return protocol.parse_validation(await self.send(call), expected)

    async def find_payment(self, expected: ExpectedPayment) -> PaymentOutcome | None:
        """What SSLCommerz holds for our payment id (reconciliation after a lost IPN)."""
        call = protocol.build_transaction_query(expected.payment_id, **self._credentials)
        return protocol.parse_transaction_query(await self.send(call), expected)

    async def authorize(self, *_: Any, **__: Any) -> NoReturn:
        raise protocol.unsupported("authorize")

    async def capture(self, *_: Any, **__: Any) -> NoReturn:
        raise protocol.unsupported("capture")

    async def void(self, *_: Any, **__: Any) -> NoReturn:
        raise protocol.unsupported("void")

    # --- refunds --------------------------------------------------------------------------

    async def refund(
        self,
        *,
        bank_tran_id: str,
        amount: int,
        currency: str,
        refund_id: uuid.UUID,
        remarks: str = "",
    ) -> RefundOutcome:
        """Initiate a (partial or full) refund of a paid transaction; settles via `get_refund`."""
        call = protocol.build_refund(
            bank_tran_id=bank_tran_id,
            amount=amount,
            currency=currency,
            refund_id=refund_id,
            remarks=remarks,
            **self._credentials,
        )
        return protocol.parse_refund(await self.send(call), amount=amount, currency=currency)

    async def get_refund(self, refund_ref_id: str) -> RefundOutcome:
        call = protocol.build_refund_query(refund_ref_id, **self._credentials)
        return protocol.parse_refund(await self.send(call))
