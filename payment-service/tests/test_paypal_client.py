"""The PayPal client against the PayPal stand-in: orders, manual capture, refunds, idempotency, webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest
from pydantic import SecretStr

from paygate_common.events import PaymentStatus, RefundStatus
from paygate_devstack import paypal_standin as standin_module
from paygate_devstack.events_testing import wait_for
from paygate_devstack.standins import (
    CallbackRecorder,
    RunningStandIn,
    recording_server,
    register_paypal_webhook,
)
from payment_service.connectors.paypal import OrderCreate, PayPalClient, PayPalConfig, protocol
from payment_service.connectors.provider_http import (
    ProviderHttpError,
    ProviderUnreachable,
    UnknownProviderStatus,
    WebhookRejected,
    decimal_to_minor,
    minor_to_decimal,
)

WEBHOOK_PATH = "/webhooks/paypal"


class Merchant:
    """Our side: the URLs the payer returns to and the webhook endpoint, all recorded."""

    def __init__(self, recorder: CallbackRecorder, url: str, webhook_id: str) -> None:
        self.recorder = recorder
        self.url = url
        self.webhook_id = webhook_id

    def webhooks(self, order_id: str, event_type: str) -> list[Any]:
        found = []
        for call in self.recorder.to(WEBHOOK_PATH):
            event = json.loads(call.body)
            resource = event["resource"]
            related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
            if event["event_type"] == event_type and order_id in (
                resource.get("id"),
                related.get("order_id"),
            ):
                found.append(call)
        return found


@pytest.fixture(scope="module")
async def merchant(paypal_standin: RunningStandIn[Any]) -> AsyncIterator[Merchant]:
    async with recording_server() as (recorder, url):
        # through PayPal's own webhook API, from a thread: the stand-in shares this event loop
        webhook_id = await asyncio.to_thread(
            register_paypal_webhook, paypal_standin.url, f"{url}{WEBHOOK_PATH}"
        )
        yield Merchant(recorder, url, webhook_id)


def make_client(standin: RunningStandIn[Any], merchant: Merchant, **overrides: Any) -> PayPalClient:
    config: dict[str, Any] = {
        "api_base": standin.url,
        "client_id": standin_module.CLIENT_ID,
        "client_secret": SecretStr(standin_module.CLIENT_SECRET),
        "webhook_id": merchant.webhook_id,
        "cert_hosts": frozenset({standin.host}),
        "require_https_cert_url": False,
    }
    config.update(overrides)
    return PayPalClient(PayPalConfig(**config))


@pytest.fixture
async def client(
    paypal_standin: RunningStandIn[Any], merchant: Merchant
) -> AsyncIterator[PayPalClient]:
    async with make_client(paypal_standin, merchant) as paypal:
        yield paypal


def order_for(
    merchant: Merchant,
    amount: int,
    capture_method: Literal["automatic", "manual"] = "automatic",
    currency: str = "usd",
) -> OrderCreate:
    payment_id = uuid.uuid4()
    return OrderCreate(
        payment_id=payment_id,
        amount=amount,
        currency=currency,
        capture_method=capture_method,
        return_url=f"{merchant.url}/return",
        cancel_url=f"{merchant.url}/cancel",
        idempotency_key=f"paygate-{payment_id}-create",
        description="paygate test order",
    )


async def follow_approval_link(url: str) -> httpx.Response:
    """What the payer's browser does: open the link, follow every redirect."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
        return await browser.get(url)


async def approved_order(client: PayPalClient, order: OrderCreate) -> str:
    created = await client.create_order(order)
    assert created.next_action is not None
    landed = await follow_approval_link(created.next_action["redirect_to_url"]["url"])
    assert landed.url.path == "/return"
    return str(created.provider_reference)


async def paid_order(client: PayPalClient, merchant: Merchant, amount: int) -> tuple[str, str]:
    order_id = await approved_order(client, order_for(merchant, amount))
    captured = await client.capture_order(order_id, idempotency_key=f"capture-{order_id}")
    assert captured.status is PaymentStatus.SUCCEEDED
    return order_id, captured.capture_ids[0]


# --- orders -----------------------------------------------------------------------------


async def test_automatic_payment_is_approved_through_its_link_then_captured(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    order = order_for(merchant, 2599)
    created = await client.create_order(order)

    assert created.status is PaymentStatus.REQUIRES_ACTION
    assert created.raw_status == "PAYER_ACTION_REQUIRED"  # PayPal's answer to payment_source
    assert paypal_standin.orders[created.provider_reference]["intent"] == "CAPTURE"
    assert created.next_action is not None
    redirect = created.next_action["redirect_to_url"]
    assert redirect["url"].startswith(f"{paypal_standin.url}/checkoutnow?token=")
    assert redirect["return_url"] == order.return_url

    landed = await follow_approval_link(redirect["url"])
    assert landed.url.path == "/return"
    assert landed.url.params["token"] == created.provider_reference
    assert landed.url.params["PayerID"]

    approved = await client.get_order(created.provider_reference)
    assert approved.status is PaymentStatus.PROCESSING
    assert approved.follow_up == "capture_order"

    captured = await client.capture_order(
        created.provider_reference, idempotency_key=f"paygate-{order.payment_id}-capture"
    )
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.raw_status == "COMPLETED"
    assert (captured.amount, captured.currency) == (2599, "usd")
    assert captured.amount_captured == 2599
    assert captured.merchant_reference == str(order.payment_id)
    assert len(captured.capture_ids) == 1


async def test_an_order_cannot_be_captured_before_the_payer_approves(
    client: PayPalClient, merchant: Merchant
) -> None:
    created = await client.create_order(order_for(merchant, 1500))
    with pytest.raises(ProviderHttpError) as refused:
        await client.capture_order(created.provider_reference, idempotency_key="early-capture")
    assert (refused.value.status_code, refused.value.code) == (422, "ORDER_NOT_APPROVED")


async def test_a_payer_who_cancels_lands_on_the_cancel_url_and_nothing_is_paid(
    client: PayPalClient, merchant: Merchant
) -> None:
    created = await client.create_order(order_for(merchant, 1002))  # test value: cancels
    assert created.next_action is not None
    landed = await follow_approval_link(created.next_action["redirect_to_url"]["url"])
    assert landed.url.path == "/cancel"
    assert (await client.get_order(created.provider_reference)).status is (
        PaymentStatus.REQUIRES_ACTION
    )


async def test_a_declined_instrument_sends_the_payer_back_to_approve_again(
    client: PayPalClient, merchant: Merchant
) -> None:
    order_id = await approved_order(client, order_for(merchant, 1005))  # test value: declines
    outcome = await client.capture_order(order_id, idempotency_key=f"capture-{order_id}")
    assert outcome.status is PaymentStatus.REQUIRES_ACTION
    assert outcome.failure_code == "instrument_declined"
    assert outcome.amount_captured == 0
    assert outcome.next_action is not None
    assert f"token={order_id}" in outcome.next_action["redirect_to_url"]["url"]


# --- manual capture -------------------------------------------------------------------------


async def test_manual_payment_is_authorised_partly_captured_and_the_rest_voided(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    order_id = await approved_order(client, order_for(merchant, 10000, "manual"))
    assert paypal_standin.orders[order_id]["intent"] == "AUTHORIZE"
    assert (await client.get_order(order_id)).follow_up == "authorize_order"

    held = await client.authorize_order(order_id, idempotency_key=f"authorize-{order_id}")
    assert held.status is PaymentStatus.REQUIRES_CAPTURE
    assert (held.amount_capturable, held.amount_captured) == (10000, 0)
    assert held.authorization_id is not None
    auth_id = held.authorization_id

    with pytest.raises(ProviderHttpError) as too_much:
        await client.capture_authorization(
            auth_id, idempotency_key=f"over-{auth_id}", amount=10001, currency="usd"
        )
    assert too_much.value.code == "MAX_CAPTURE_AMOUNT_EXCEEDED"

    capture = await client.capture_authorization(
        auth_id,
        idempotency_key=f"capture-1-{auth_id}",
        amount=4000,
        currency="usd",
        final_capture=False,
    )
    assert capture.status is PaymentStatus.SUCCEEDED
    assert (capture.amount, capture.final_capture) == (4000, False)
    partly = await client.get_order(order_id)
    assert partly.status is PaymentStatus.SUCCEEDED
    assert (partly.amount_captured, partly.amount_capturable) == (4000, 6000)
    assert (await client.get_authorization(auth_id))["status"] == "PARTIALLY_CAPTURED"

    await client.void_authorization(auth_id, idempotency_key=f"void-{auth_id}")
    after_void = await client.get_order(order_id)
    assert after_void.status is PaymentStatus.SUCCEEDED
    assert (after_void.amount_captured, after_void.amount_capturable) == (4000, 0)
    assert (await client.get_authorization(auth_id))["status"] == "VOIDED"

    with pytest.raises(ProviderHttpError) as voided:
        await client.capture_authorization(auth_id, idempotency_key=f"capture-2-{auth_id}")
    assert voided.value.code == "AUTHORIZATION_VOIDED"


async def test_voiding_an_untouched_authorisation_cancels_the_payment(
    client: PayPalClient, merchant: Merchant
) -> None:
    order_id = await approved_order(client, order_for(merchant, 3000, "manual"))
    held = await client.authorize_order(order_id, idempotency_key=f"authorize-{order_id}")
    assert held.authorization_id is not None
    await client.void_authorization(held.authorization_id, idempotency_key=f"void-{order_id}")
    cancelled = await client.get_order(order_id)
    assert cancelled.status is PaymentStatus.CANCELLED
    assert cancelled.amount_capturable == 0


async def test_a_final_partial_capture_releases_the_rest(
    client: PayPalClient, merchant: Merchant
) -> None:
    order_id = await approved_order(client, order_for(merchant, 5000, "manual"))
    held = await client.authorize_order(order_id, idempotency_key=f"authorize-{order_id}")
    assert held.authorization_id is not None
    await client.capture_authorization(
        held.authorization_id, idempotency_key=f"c-{order_id}", amount=1200, currency="usd"
    )
    settled = await client.get_order(order_id)
    assert settled.status is PaymentStatus.SUCCEEDED
    assert (settled.amount_captured, settled.amount_capturable) == (1200, 0)


# --- refunds ----------------------------------------------------------------------------


async def test_refunds_partial_then_full_end_refunded(
    client: PayPalClient, merchant: Merchant
) -> None:
    order_id, capture_id = await paid_order(client, merchant, 8000)

    first = await client.refund_capture(
        capture_id, idempotency_key=f"refund-1-{capture_id}", amount=3000, currency="usd"
    )
    assert first.status is RefundStatus.SUCCEEDED
    assert (first.amount, first.currency) == (3000, "usd")
    partly = await client.get_order(order_id)
    assert partly.status is PaymentStatus.PARTIALLY_REFUNDED
    assert partly.amount_refunded == 3000

    with pytest.raises(ProviderHttpError) as too_much:
        await client.refund_capture(
            capture_id, idempotency_key=f"refund-x-{capture_id}", amount=5001, currency="usd"
        )
    assert too_much.value.code == "REFUND_AMOUNT_EXCEEDED"

    rest = await client.refund_capture(capture_id, idempotency_key=f"refund-2-{capture_id}")
    assert rest.amount == 5000
    refunded = await client.get_order(order_id)
    assert refunded.status is PaymentStatus.REFUNDED
    assert refunded.amount_refunded == 8000

    looked_up = await client.get_refund(first.provider_refund_id)
    assert (looked_up.status, looked_up.amount) == (RefundStatus.SUCCEEDED, 3000)
    with pytest.raises(ProviderHttpError) as spent:
        await client.refund_capture(capture_id, idempotency_key=f"refund-3-{capture_id}")
    assert spent.value.code == "CAPTURE_FULLY_REFUNDED"


# --- idempotency and tokens -----------------------------------------------------------------


async def test_a_repeated_paypal_request_id_replays_instead_of_acting_twice(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    order = order_for(merchant, 4200)
    orders_before = len(paypal_standin.orders)
    first = await client.create_order(order)
    again = await client.create_order(order)
    assert again.provider_reference == first.provider_reference
    assert len(paypal_standin.orders) == orders_before + 1

    assert first.next_action is not None
    await follow_approval_link(first.next_action["redirect_to_url"]["url"])
    captures_before = len(paypal_standin.captures)
    key = f"paygate-{order.payment_id}-capture"
    captured = await client.capture_order(first.provider_reference, idempotency_key=key)
    replayed = await client.capture_order(first.provider_reference, idempotency_key=key)
    assert replayed.capture_ids == captured.capture_ids
    assert len(paypal_standin.captures) == captures_before + 1

    refunds_before = len(paypal_standin.refunds)
    capture_id = captured.capture_ids[0]
    refund = await client.refund_capture(
        capture_id, idempotency_key="r-1", amount=100, currency="usd"
    )
    same = await client.refund_capture(
        capture_id, idempotency_key="r-1", amount=100, currency="usd"
    )
    assert same.provider_refund_id == refund.provider_refund_id
    assert len(paypal_standin.refunds) == refunds_before + 1
    # and a different key is a different refund
    other = await client.refund_capture(
        capture_id, idempotency_key="r-2", amount=100, currency="usd"
    )
    assert other.provider_refund_id != refund.provider_refund_id


async def test_concurrent_calls_with_one_paypal_request_id_create_one_order(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    order = order_for(merchant, 4300)
    await client.access_token()  # so the four calls below overlap at PayPal, not at the token
    before = len(paypal_standin.orders)
    paypal_standin.standin.processing_delay = 0.2
    try:
        results = await asyncio.gather(
            *(client.create_order(order) for _ in range(4)), return_exceptions=True
        )
    finally:
        paypal_standin.standin.processing_delay = 0.0
    created = {r.provider_reference for r in results if not isinstance(r, BaseException)}
    in_progress = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 1
    # a duplicate that overlapped the first is an unknown outcome to retry, never an error
    assert in_progress and all(isinstance(r, ProviderUnreachable) for r in in_progress)
    assert len(paypal_standin.orders) == before + 1
    assert (await client.create_order(order)).provider_reference in created


async def test_the_access_token_is_fetched_once_and_renewed_after_it_expires(
    paypal_standin: RunningStandIn[Any], merchant: Merchant
) -> None:
    now = [1000.0]
    config = PayPalConfig(
        api_base=paypal_standin.url,
        client_id=standin_module.CLIENT_ID,
        client_secret=SecretStr(standin_module.CLIENT_SECRET),
    )
    async with PayPalClient(config, clock=lambda: now[0]) as paypal:
        before = paypal_standin.token_requests
        first = await paypal.create_order(order_for(merchant, 1100))
        await paypal.get_order(first.provider_reference)
        await paypal.get_order(first.provider_reference)
        assert paypal_standin.token_requests == before + 1

        now[0] += paypal_standin.token_lifetime  # past expires_in
        await paypal.get_order(first.provider_reference)
        assert paypal_standin.token_requests == before + 2


async def test_wrong_client_credentials_are_a_definite_refusal(
    paypal_standin: RunningStandIn[Any], merchant: Merchant
) -> None:
    async with make_client(
        paypal_standin, merchant, client_secret=SecretStr("not-the-secret")
    ) as paypal:
        with pytest.raises(ProviderHttpError) as refused:
            await paypal.create_order(order_for(merchant, 1000))
    assert (refused.value.status_code, refused.value.code) == (401, "invalid_client")


# --- webhooks ---------------------------------------------------------------------------


async def test_genuine_webhooks_verify_and_say_what_happened(
    client: PayPalClient, merchant: Merchant
) -> None:
    order_id, capture_id = await paid_order(client, merchant, 6100)
    await client.refund_capture(
        capture_id, idempotency_key=f"r-{capture_id}", amount=100, currency="usd"
    )

    approved = await wait_for(lambda: merchant.webhooks(order_id, "CHECKOUT.ORDER.APPROVED"))
    notice = await client.verify_webhook(approved[0].headers, approved[0].body)
    assert (notice.event_type, notice.order_id) == ("CHECKOUT.ORDER.APPROVED", order_id)
    assert notice.payment_status is PaymentStatus.PROCESSING

    completed = await wait_for(lambda: merchant.webhooks(order_id, "PAYMENT.CAPTURE.COMPLETED"))
    notice = await client.verify_webhook(completed[0].headers, completed[0].body)
    assert notice.payment_status is PaymentStatus.SUCCEEDED
    assert (notice.resource_id, notice.order_id) == (capture_id, order_id)
    assert notice.capture_id == capture_id

    def refunded() -> list[Any]:
        return [
            call
            for call in merchant.recorder.to(WEBHOOK_PATH)
            if json.loads(call.body)["event_type"] == "PAYMENT.CAPTURE.REFUNDED"
            and capture_id in json.dumps(json.loads(call.body)["resource"]["links"])
        ]

    refund_call = (await wait_for(refunded))[0]
    notice = await client.verify_webhook(refund_call.headers, refund_call.body)
    assert notice.refund_status is RefundStatus.SUCCEEDED
    assert notice.capture_id == capture_id


async def test_an_authorisation_webhook_verifies_through_the_verify_api_too(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    order_id = await approved_order(client, order_for(merchant, 2000, "manual"))
    await client.authorize_order(order_id, idempotency_key=f"authorize-{order_id}")
    call = (await wait_for(lambda: merchant.webhooks(order_id, "PAYMENT.AUTHORIZATION.CREATED")))[0]

    async with make_client(paypal_standin, merchant, webhook_verification="api") as via_api:
        notice = await via_api.verify_webhook(call.headers, call.body)
        assert notice.payment_status is PaymentStatus.REQUIRES_CAPTURE
        tampered = call.body.replace(b'"2000.00"', b'"1.00"').replace(b'"20.00"', b'"0.01"')
        assert tampered != call.body
        with pytest.raises(WebhookRejected) as rejected:
            await via_api.verify_webhook(call.headers, tampered)
        assert rejected.value.reason == "signature_mismatch"


async def _one_webhook(client: PayPalClient, merchant: Merchant) -> Any:
    order_id = await approved_order(client, order_for(merchant, 3300))
    return (await wait_for(lambda: merchant.webhooks(order_id, "CHECKOUT.ORDER.APPROVED")))[0]


async def test_a_forged_signature_is_rejected(client: PayPalClient, merchant: Merchant) -> None:
    call = await _one_webhook(client, merchant)
    signature = bytearray(base64.b64decode(call.headers["paypal-transmission-sig"]))
    signature[10] ^= 0xFF
    forged = {**call.headers, "paypal-transmission-sig": base64.b64encode(signature).decode()}
    with pytest.raises(WebhookRejected) as rejected:
        await client.verify_webhook(forged, call.body)
    assert rejected.value.reason == "signature_mismatch"


async def test_a_modified_body_is_rejected(client: PayPalClient, merchant: Merchant) -> None:
    call = await _one_webhook(client, merchant)
    event = json.loads(call.body)
    event["resource"]["purchase_units"][0]["amount"]["value"] = "0.01"
    with pytest.raises(WebhookRejected) as rejected:
        await client.verify_webhook(call.headers, json.dumps(event).encode())
    assert rejected.value.reason == "signature_mismatch"
    # the same bytes, re-serialised differently, are a different body as well
    with pytest.raises(WebhookRejected):
        await client.verify_webhook(
            call.headers, json.dumps(json.loads(call.body), indent=1).encode()
        )


async def test_a_certificate_from_a_host_off_the_allow_list_is_never_fetched(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    call = await _one_webhook(client, merchant)
    # an attacker's own key and certificate, served from their host
    attacker = standin_module.PayPalStandIn()
    async with recording_server() as (recorder, foreign):
        body = call.body
        headers = attacker.signed_headers(merchant.webhook_id, body.decode(), foreign)
        with pytest.raises(WebhookRejected) as rejected:
            await client.verify_webhook(headers, body)
        assert rejected.value.reason == "cert_host_not_allowed"
        assert recorder.calls == []  # nothing was fetched from the foreign host

    async with make_client(
        paypal_standin, merchant, cert_hosts=frozenset({"api.paypal.com"})
    ) as strict:
        with pytest.raises(WebhookRejected) as rejected:
            await strict.verify_webhook(call.headers, call.body)
        assert rejected.value.reason == "cert_host_not_allowed"

    async with make_client(paypal_standin, merchant, require_https_cert_url=True) as https_only:
        with pytest.raises(WebhookRejected) as rejected:
            await https_only.verify_webhook(call.headers, call.body)
        assert rejected.value.reason == "cert_url_not_https"


async def test_a_delivery_without_the_paypal_headers_or_for_another_webhook_is_rejected(
    client: PayPalClient, merchant: Merchant, paypal_standin: RunningStandIn[Any]
) -> None:
    call = await _one_webhook(client, merchant)
    partial = {k: v for k, v in call.headers.items() if k != "paypal-transmission-sig"}
    with pytest.raises(WebhookRejected) as rejected:
        await client.verify_webhook(partial, call.body)
    assert rejected.value.reason == "missing_headers"

    async with make_client(paypal_standin, merchant, webhook_id="WH-SOMEONE-ELSE") as other:
        with pytest.raises(WebhookRejected) as rejected:
            await other.verify_webhook(call.headers, call.body)
        assert rejected.value.reason == "signature_mismatch"


# --- the pure protocol layer ------------------------------------------------------------------


def test_amounts_become_decimal_strings_in_the_currency_exponent() -> None:
    assert minor_to_decimal(1999, "usd") == "19.99"
    assert minor_to_decimal(5, "usd") == "0.05"
    assert minor_to_decimal(500, "jpy") == "500"
    assert minor_to_decimal(1234, "kwd") == "1.234"
    assert decimal_to_minor("19.99", "usd") == 1999
    assert decimal_to_minor("20", "usd") == 2000
    with pytest.raises(UnknownProviderStatus):
        decimal_to_minor("19.999", "usd")
    with pytest.raises(ValueError):
        minor_to_decimal(-1, "usd")


def test_create_order_maps_capture_method_to_intent_and_carries_our_ids() -> None:
    payment_id = uuid.uuid4()
    manual = OrderCreate(
        payment_id=payment_id,
        amount=1050,
        currency="eur",
        capture_method="manual",
        return_url="https://shop.example.com/r",
        cancel_url="https://shop.example.com/c",
        idempotency_key="paygate-x-1",
    )
    call = protocol.build_create_order(manual)
    assert call.json is not None
    assert call.json["intent"] == "AUTHORIZE"
    unit = call.json["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "EUR", "value": "10.50"}
    assert unit["custom_id"] == str(payment_id)
    assert call.idempotency_key == "paygate-x-1"
    automatic = protocol.build_create_order(
        OrderCreate(**{**manual.__dict__, "capture_method": "automatic"})
    )
    assert automatic.json is not None and automatic.json["intent"] == "CAPTURE"
    with pytest.raises(ValueError):
        protocol.build_get_order("../../v1/oauth2/token")


@pytest.mark.parametrize("status", list(protocol.CaptureStatus))
def test_every_capture_status_has_a_paygate_state(status: protocol.CaptureStatus) -> None:
    assert isinstance(protocol.capture_status(status), PaymentStatus)


@pytest.mark.parametrize("status", list(protocol.PayPalRefundStatus))
def test_every_refund_status_has_a_paygate_state(status: protocol.PayPalRefundStatus) -> None:
    assert isinstance(protocol.refund_status(status), RefundStatus)


@pytest.mark.parametrize(
    ("order_status", "intent", "auth_status", "expected"),
    [
        ("CREATED", "CAPTURE", None, PaymentStatus.REQUIRES_ACTION),
        ("PAYER_ACTION_REQUIRED", "CAPTURE", None, PaymentStatus.REQUIRES_ACTION),
        ("SAVED", "CAPTURE", None, PaymentStatus.REQUIRES_ACTION),
        ("APPROVED", "CAPTURE", None, PaymentStatus.PROCESSING),
        ("VOIDED", "CAPTURE", None, PaymentStatus.CANCELLED),
        ("COMPLETED", "AUTHORIZE", "CREATED", PaymentStatus.REQUIRES_CAPTURE),
        ("COMPLETED", "AUTHORIZE", "PENDING", PaymentStatus.PROCESSING),
        ("COMPLETED", "AUTHORIZE", "DENIED", PaymentStatus.FAILED),
        ("COMPLETED", "AUTHORIZE", "VOIDED", PaymentStatus.CANCELLED),
        ("COMPLETED", "AUTHORIZE", "EXPIRED", PaymentStatus.CANCELLED),
    ],
)
def test_order_states_map_onto_payment_states(
    order_status: str, intent: str, auth_status: str | None, expected: PaymentStatus
) -> None:
    unit: dict[str, Any] = {"amount": {"currency_code": "USD", "value": "10.00"}}
    if auth_status:
        unit["payments"] = {
            "authorizations": [{"id": "AUTH1", "status": auth_status, "amount": unit["amount"]}]
        }
    order = {"id": "ORDER1", "status": order_status, "intent": intent, "purchase_units": [unit]}
    assert protocol.parse_order(order).status is expected


def test_an_undocumented_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnknownProviderStatus):
        protocol.parse_order({"id": "O", "status": "PAID_MAYBE", "purchase_units": [{}]})
