"""One contract, every connector: the same flows give the same results, whatever the provider.

Every connector in `connectors.registry.CONNECTORS` runs this suite against its provider (or the
provider's local stand-in): authorise (approved, declined, 3-D Secure), manual capture in part,
void, partial refunds found again by our ids, webhook mapping, and an explicit refusal of any
flow it declares it cannot do. Adding a connector (PayPal, SSLCommerz) is one `HARNESSES` entry.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from payment_tests_support import ALEMBIC_INI, Stripe

from paygate_common.db import create_engine
from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.migrations import upgrade_head
from paygate_devstack.sslcommerz_standin import read_redirect_form
from payment_service.connectors import build_connector
from payment_service.connectors.base import (
    CaptureContext,
    CompleteContext,
    ConnectorResult,
    Flow,
    PaymentContext,
    RefundContext,
    UnsupportedFlow,
    VoidContext,
    idempotency_key,
    operation_key,
    refund_key,
    require,
)
from payment_service.connectors.registry import CONNECTORS
from payment_service.connectors.stripe import StripeConnector
from payment_service.settings import Settings

AMOUNT = 4200
# scenario → expected status; each harness knows its provider's token for the scenario
SCENARIOS = {
    "approved": PaymentStatus.SUCCEEDED,
    "declined": PaymentStatus.FAILED,
    "needs_3ds": PaymentStatus.REQUIRES_ACTION,
}


Finish = Callable[[Any, Any, PaymentContext, ConnectorResult], Awaitable[ConnectorResult]]


async def _no_redirect(_c: Any, _t: Any, _p: PaymentContext, result: ConnectorResult) -> Any:
    return result


@dataclass
class Harness:
    """How the suite reaches one connector's provider and what its webhooks look like."""

    name: str
    # scenario → (provider token, provider customer)
    method_for: Callable[[str], Awaitable[tuple[str, str | None]]]
    # (provider event, expected payment status or None, expected refund statuses)
    webhooks: list[tuple[dict[str, Any], PaymentStatus | None, list[RefundStatus]]] = field(
        default_factory=list
    )
    # Redirect providers: the amount that plays the scenario at the stand-in, and the payer's
    # part (follow the approval link as a browser would) plus our completion of the payment.
    amount_for: Callable[[str], int] = lambda scenario: AMOUNT
    finish: Finish = _no_redirect
    # What a declined payment looks like at this provider (PayPal: back to the payer).
    declined: tuple[PaymentStatus, str] = (PaymentStatus.FAILED, "card_declined")
    # ... and what the provider's object says afterwards, when that differs (PayPal's order
    # stays APPROVED: approved by the payer, nothing paid).
    declined_reread: PaymentStatus | None = None
    # Card providers can be searched by our payment id; redirect providers need not be (an
    # order or session nobody saw the link of cannot be paid).
    findable_by_payment_id: bool = True
    webhook_reference: str = "pi_1"


async def _complete(
    connector: Any,
    transport: Any,
    payment: PaymentContext,
    result: Any,
    callback: dict[str, str] | None = None,
) -> ConnectorResult:
    request = connector.build_complete_request(
        CompleteContext(
            payment_id=payment.payment_id,
            provider_reference=result.provider_reference,
            amount=payment.amount,
            currency=payment.currency,
            capture_method=payment.capture_method,
            idempotency_key=operation_key(payment.payment_id, "complete"),
            callback=callback or {},
        )
    )
    assert request.idempotency_key == operation_key(payment.payment_id, "complete")
    return connector.parse_complete_response(await transport.send(request))


async def paypal_finish(
    connector: Any, transport: Any, payment: PaymentContext, result: ConnectorResult
) -> ConnectorResult:
    """The payer follows the approval link (the stand-in approves and redirects back)."""
    assert result.status is PaymentStatus.REQUIRES_ACTION
    url = result.next_action["redirect_to_url"]["url"]
    async with httpx.AsyncClient() as browser:
        back = await browser.get(url)
    assert back.status_code == 302
    assert back.headers["location"].startswith(str(payment.callback_url))
    return await _complete(connector, transport, payment, result)


async def sslcommerz_finish(
    connector: Any, transport: Any, payment: PaymentContext, result: ConnectorResult
) -> ConnectorResult:
    """The customer pays on the gateway page; its auto-submitting form carries the signed
    fields back to our success/fail URL, which we confirm like an IPN."""
    assert result.status is PaymentStatus.REQUIRES_ACTION
    async with httpx.AsyncClient() as browser:
        page = await browser.get(result.next_action["redirect_to_url"]["url"])
    method, action, fields = read_redirect_form(page.text)
    assert method == "POST" and action.startswith(str(payment.callback_url))
    return await _complete(connector, transport, payment, result, callback=fields)


def _paypal_event(event_type: str, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "WH-1",
        "event_type": event_type,
        "resource_type": resource_type,
        "resource": resource,
    }


_PAYPAL_CAPTURE = {
    "id": "CAPTURE1",
    "status": "COMPLETED",
    "amount": {"currency_code": "USD", "value": "42.00"},
    "custom_id": str(uuid.uuid4()),
    "supplementary_data": {"related_ids": {"order_id": "pi_1"}},
}
PAYPAL_WEBHOOKS = [
    (
        _paypal_event("PAYMENT.CAPTURE.COMPLETED", "capture", _PAYPAL_CAPTURE),
        PaymentStatus.SUCCEEDED,
        [],
    ),
    (
        _paypal_event(
            "PAYMENT.AUTHORIZATION.VOIDED",
            "authorization",
            {**_PAYPAL_CAPTURE, "id": "AUTH1", "status": "VOIDED"},
        ),
        PaymentStatus.CANCELLED,
        [],
    ),
    (
        _paypal_event(
            "PAYMENT.CAPTURE.REFUNDED",
            "refund",
            {
                "id": "REFUND1",
                "status": "COMPLETED",
                "amount": {"currency_code": "USD", "value": "1.00"},
                "invoice_id": str(uuid.uuid4()),
                "supplementary_data": {"related_ids": {"order_id": "pi_1"}},
                "links": [{"rel": "up", "href": "https://api.paypal.com/v2/payments/captures/C1"}],
            },
        ),
        None,
        [RefundStatus.SUCCEEDED],
    ),
    (_paypal_event("CUSTOMER.DISPUTE.CREATED", "dispute", {"id": "D1"}), None, []),
]
_TRAN_ID = str(uuid.uuid4())
SSLCOMMERZ_WEBHOOKS = [
    ({"tran_id": _TRAN_ID, "status": "VALID"}, PaymentStatus.SUCCEEDED, []),
    ({"tran_id": _TRAN_ID, "status": "FAILED"}, PaymentStatus.FAILED, []),
    ({"tran_id": _TRAN_ID, "status": "CANCELLED"}, PaymentStatus.CANCELLED, []),
    ({"tran_id": "not ours", "status": "VALID"}, None, []),
]


def _suffix_amount(endings: dict[str, int]) -> Callable[[str], int]:
    # the stand-ins decide by the amount's last two minor digits
    return lambda scenario: AMOUNT + endings.get(scenario, 0)


def _stripe_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_1", "type": event_type, "data": {"object": obj}}


def _pi(status: str) -> dict[str, Any]:
    return {"id": "pi_1", "status": status, "amount": AMOUNT, "currency": "usd", "metadata": {}}


def _refund(status: str) -> dict[str, Any]:
    return {
        "id": "re_1",
        "status": status,
        "amount": 100,
        "payment_intent": "pi_1",
        "metadata": {"refund_id": str(uuid.uuid4())},
    }


STRIPE_WEBHOOKS = [
    (_stripe_event("payment_intent.succeeded", _pi("succeeded")), PaymentStatus.SUCCEEDED, []),
    (
        _stripe_event("payment_intent.amount_capturable_updated", _pi("requires_capture")),
        PaymentStatus.REQUIRES_CAPTURE,
        [],
    ),
    (_stripe_event("payment_intent.canceled", _pi("canceled")), PaymentStatus.CANCELLED, []),
    (
        _stripe_event("payment_intent.payment_failed", _pi("requires_payment_method")),
        PaymentStatus.FAILED,
        [],
    ),
    (
        _stripe_event(
            "charge.refunded",
            {
                "id": "ch_1",
                "payment_intent": "pi_1",
                "refunds": {"data": [_refund("succeeded"), _refund("pending")]},
            },
        ),
        None,
        [RefundStatus.SUCCEEDED, RefundStatus.PENDING],
    ),
    (_stripe_event("charge.refund.updated", _refund("failed")), None, [RefundStatus.FAILED]),
    (_stripe_event("customer.created", {"id": "cus_1"}), None, []),
]


def harnesses(stripe_api: Stripe) -> dict[str, Harness]:
    async def stripe_method(scenario: str) -> tuple[str, str | None]:
        token = {
            "approved": "pm_card_visa",
            "declined": "pm_card_chargeCustomerFail",
            "needs_3ds": await stripe_api.card_method("4000002500003155"),
        }[scenario]
        customer, pm = await stripe_api.customer_with(token)
        return pm, customer

    async def sandbox_method(scenario: str) -> tuple[str, str | None]:
        return {
            "approved": "pm_card_visa",
            "declined": "pm_card_chargeCustomerFail",
            "needs_3ds": "pm_card_threeDSecure2Required",
        }[scenario], None

    async def no_method(scenario: str) -> tuple[str, str | None]:
        return "", None

    return {
        "stripe": Harness("stripe", stripe_method, STRIPE_WEBHOOKS),
        "sandbox": Harness("sandbox", sandbox_method),
        # PayPal: a decline (amount …05) sends the payer back to choose again (PayPal's advice
        # for INSTRUMENT_DECLINED); "needs_3ds" is the approval itself, not yet given.
        "paypal": Harness(
            "paypal",
            no_method,
            PAYPAL_WEBHOOKS,
            amount_for=_suffix_amount({"declined": 5}),
            finish=paypal_finish,
            declined=(PaymentStatus.REQUIRES_ACTION, "instrument_declined"),
            declined_reread=PaymentStatus.PROCESSING,
            findable_by_payment_id=False,
            webhook_reference="pi_1",
        ),
        # SSLCommerz: a failed payment (amount …02); "needs_3ds" = the gateway page, not paid.
        "sslcommerz": Harness(
            "sslcommerz",
            no_method,
            SSLCOMMERZ_WEBHOOKS,
            amount_for=_suffix_amount({"declined": 2}),
            finish=sslcommerz_finish,
            declined=(PaymentStatus.FAILED, "failed"),
            findable_by_payment_id=False,
            webhook_reference=_TRAN_ID,
        ),
    }


@pytest.fixture(scope="module")
async def contract_database(postgres: Any) -> str:
    url = str(await postgres.acreate_database())
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="payments")
    return url


@pytest.fixture(params=sorted(CONNECTORS))
async def provider(
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., Settings],
    contract_database: str,
    stripe_api: Stripe,
) -> AsyncIterator[tuple[Any, Any, Harness]]:
    """(connector, transport, harness) for every registered connector."""
    harness = harnesses(stripe_api).get(request.param)
    assert harness is not None, f"connector {request.param} has no contract harness"
    settings = settings_factory(database_url=contract_database, connector=request.param)
    engine = create_engine(settings, pool_size=2)
    connector, transport = build_connector(settings, engine=engine)
    yield connector, transport, harness
    await transport.aclose()
    await engine.dispose()


def context(
    token: str, customer: str | None, capture_method: str = "automatic", amount: int = AMOUNT
) -> PaymentContext:
    payment_id = uuid.uuid4()
    return PaymentContext(
        payment_id=payment_id,
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        amount=amount,
        currency="usd",
        attempt_no=1,
        idempotency_key=idempotency_key(payment_id, 1),
        payment_method_token=token,
        provider_customer_id=customer,
        capture_method=capture_method,
        # a redirect provider sends the payer back here (never reached in this suite) and
        # notifies here (nothing listens: the stand-in's retries fail fast)
        callback_url=f"http://127.0.0.1:9/provider-return/x/{payment_id}",
        notify_url="http://127.0.0.1:9/webhooks/x",
    )


async def authorise(provider: Any, scenario: str, capture_method: str = "automatic") -> Any:
    """Authorise; for a redirect provider the payer's part too, unless the scenario is to
    leave the payer's action pending."""
    connector, transport, harness = provider
    payment = context(
        *(await harness.method_for(scenario)),
        capture_method=capture_method,
        amount=harness.amount_for(scenario),
    )
    request = connector.build_authorize_request(payment)
    assert request.idempotency_key == payment.idempotency_key
    result = connector.parse_authorize_response(await transport.send(request))
    if scenario != "needs_3ds":
        result = await harness.finish(connector, transport, payment, result)
    return payment, result


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_authorisation_maps_the_scenario_to_the_same_status(
    provider: Any, scenario: str
) -> None:
    connector, transport, harness = provider
    payment, result = await authorise(provider, scenario)
    expected = SCENARIOS[scenario]
    reread = SCENARIOS[scenario]
    if scenario == "declined":
        expected, code = harness.declined
        reread = harness.declined_reread or expected
        assert result.failure_code == code
        assert result.failure_message
    assert result.status == expected
    if expected is PaymentStatus.REQUIRES_ACTION:
        assert result.next_action and result.next_action["type"]
        assert "secret" not in repr(result.next_action)
    if expected is not PaymentStatus.FAILED:
        if harness.findable_by_payment_id:
            # What was created can be found again by our payment id (reconciliation uses it).
            found = await transport.find_payment(payment.payment_id)
            assert found is not None
            again = connector.parse_authorize_response(found)
            assert again.provider_reference == result.provider_reference
        else:
            # Declared: a lost create is never adopted; it cannot be paid (see the connector).
            assert await transport.find_payment(payment.payment_id) is None
        by_reference = await transport.retrieve_payment(result.provider_reference)
        assert connector.parse_authorize_response(by_reference).status == reread


async def test_nothing_is_found_for_a_payment_or_refund_never_sent(provider: Any) -> None:
    _, transport, _ = provider
    assert await transport.find_payment(uuid.uuid4()) is None
    _, result = await authorise(provider, "approved")
    assert (
        await transport.find_refund(uuid.uuid4(), provider_reference=result.provider_reference)
        is None
    )


async def test_manual_capture_of_part_of_an_authorisation(provider: Any) -> None:
    connector, transport, _ = provider
    if Flow.MANUAL_CAPTURE not in connector.capabilities:
        with pytest.raises(UnsupportedFlow):
            require(connector, Flow.MANUAL_CAPTURE)
        return
    payment, authorised = await authorise(provider, "approved", capture_method="manual")
    assert authorised.status is PaymentStatus.REQUIRES_CAPTURE
    assert authorised.amount_capturable in (AMOUNT, None)

    capture = CaptureContext(
        payment_id=payment.payment_id,
        provider_reference=authorised.provider_reference,
        amount=3000,
        currency="usd",
        idempotency_key=operation_key(payment.payment_id, "capture"),
    )
    request = connector.build_capture_request(capture)
    assert request.idempotency_key == capture.idempotency_key
    captured = connector.parse_capture_response(await transport.send(request))
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured in (3000, None)  # localstripe omits amount_received
    held = await transport.retrieve_payment(authorised.provider_reference)
    assert connector.parse_authorize_response(held).status is PaymentStatus.SUCCEEDED

    # A second capture captures nothing more: refused as an answer (not an exception), or —
    # a provider that honours idempotency keys (PayPal-Request-Id) — the first answer replayed.
    again = connector.parse_capture_response(await transport.send(request))
    if again.status is PaymentStatus.SUCCEEDED:
        assert again.amount_captured in (3000, None)
    else:
        assert again.status is PaymentStatus.FAILED and again.failure_code
    held = await transport.retrieve_payment(authorised.provider_reference)
    assert connector.parse_authorize_response(held).amount_captured in (3000, None)


async def test_void_releases_an_authorisation(provider: Any) -> None:
    connector, transport, _ = provider
    if Flow.VOID not in connector.capabilities:
        with pytest.raises(UnsupportedFlow):
            require(connector, Flow.VOID)
        return
    payment, authorised = await authorise(provider, "approved", capture_method="manual")
    void = VoidContext(
        payment_id=payment.payment_id,
        provider_reference=authorised.provider_reference,
        idempotency_key=operation_key(payment.payment_id, "void"),
    )
    voided = connector.parse_void_response(await transport.send(connector.build_void_request(void)))
    assert voided.status is PaymentStatus.CANCELLED
    held = await transport.retrieve_payment(authorised.provider_reference)
    assert connector.parse_authorize_response(held).status is PaymentStatus.CANCELLED


async def test_partial_refunds_are_made_and_found_again_by_our_refund_id(provider: Any) -> None:
    connector, transport, _ = provider
    payment, paid = await authorise(provider, "approved")
    assert paid.status is PaymentStatus.SUCCEEDED
    made = []
    for amount in (1000, 500):
        refund_id = uuid.uuid4()
        refund = RefundContext(
            refund_id=refund_id,
            payment_id=payment.payment_id,
            provider_reference=paid.provider_reference,
            amount=amount,
            currency="usd",
            idempotency_key=refund_key(refund_id),
            reason="requested_by_customer",
        )
        request = connector.build_refund_request(refund)
        assert request.idempotency_key == refund.idempotency_key
        result = connector.parse_refund_response(await transport.send(request))
        assert (result.status, result.amount, result.refund_id) == (
            RefundStatus.SUCCEEDED,
            amount,
            refund_id,
        )
        assert result.provider_reference
        made.append((refund_id, result.provider_reference))
    for refund_id, reference in made:
        found = await transport.find_refund(
            refund_id, provider_reference=paid.provider_reference, refund_reference=reference
        )
        assert found is not None
        assert connector.parse_refund_response(found).provider_reference == reference


async def test_webhooks_map_to_the_same_results_or_are_declared_unsupported(
    provider: Any,
) -> None:
    connector, _, harness = provider
    if Flow.WEBHOOKS not in connector.capabilities:
        with pytest.raises(UnsupportedFlow) as refused:
            require(connector, Flow.WEBHOOKS)
        assert refused.value.code == "unsupported_by_provider"
        assert connector.parse_webhook({"type": "anything", "data": {"object": {}}}) is None
        return
    assert harness.webhooks, f"{connector.name} supports webhooks: give the suite samples"
    for event, payment_status, refund_statuses in harness.webhooks:
        update = connector.parse_webhook(event)
        if payment_status is None and not refund_statuses:
            assert update is None, event
            continue
        assert update is not None, event
        assert (update.payment.status if update.payment else None) == payment_status
        assert [r.status for r in update.refunds] == refund_statuses
        assert update.provider_reference == harness.webhook_reference


async def test_every_connector_declares_its_flows_and_its_minimum_charge(provider: Any) -> None:
    connector, _, _ = provider
    assert Flow.AUTHORIZE in connector.capabilities
    assert connector.minimum_amount("usd") == 50
    for flow in Flow:
        if flow in connector.capabilities:
            require(connector, flow)
        else:
            with pytest.raises(UnsupportedFlow):
                require(connector, flow)


@pytest.mark.parametrize(
    ("pi_status", "expected"),
    [
        ("succeeded", PaymentStatus.SUCCEEDED),
        ("requires_action", PaymentStatus.REQUIRES_ACTION),
        ("processing", PaymentStatus.PROCESSING),
        ("requires_payment_method", PaymentStatus.FAILED),
        ("requires_capture", PaymentStatus.REQUIRES_CAPTURE),
        ("requires_confirmation", PaymentStatus.PROCESSING),
        ("canceled", PaymentStatus.CANCELLED),
        ("something_new", PaymentStatus.PROCESSING),
    ],
)
def test_stripe_maps_every_payment_intent_status_explicitly(
    pi_status: str, expected: PaymentStatus
) -> None:
    result = StripeConnector().parse_authorize_response(
        {
            "id": "pi_1",
            "status": pi_status,
            "amount": AMOUNT,
            "client_secret": "pi_1_secret_abc",
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": "https://bank.example/3ds", "return_url": None},
            },
        }
    )
    assert result.status == expected
    assert result.provider_reference == "pi_1"
    assert "secret" not in repr(result)
    if expected is PaymentStatus.REQUIRES_ACTION:
        assert result.next_action == {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": "https://bank.example/3ds"},
        }
    if expected is PaymentStatus.REQUIRES_CAPTURE:
        # No amount_capturable on the object (localstripe): the intent's amount.
        assert result.amount_capturable == AMOUNT


def test_stripe_card_errors_become_failures_with_decline_codes() -> None:
    result = StripeConnector().parse_authorize_response(
        {
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
                "payment_intent": {"id": "pi_2", "status": "requires_payment_method"},
            }
        }
    )
    assert (result.status, result.failure_code, result.decline_code, result.provider_reference) == (
        PaymentStatus.FAILED,
        "card_declined",
        "insufficient_funds",
        "pi_2",
    )
    off_session = StripeConnector().parse_authorize_response(
        {"error": {"type": "card_error", "code": "authentication_required"}}
    )
    assert off_session.status is PaymentStatus.REQUIRES_ACTION


def test_stripe_refund_statuses_and_errors_are_mapped_explicitly() -> None:
    connector = StripeConnector()
    for raw, expected in [
        ("succeeded", RefundStatus.SUCCEEDED),
        ("pending", RefundStatus.PENDING),
        ("requires_action", RefundStatus.PENDING),
        ("failed", RefundStatus.FAILED),
        ("canceled", RefundStatus.FAILED),
        ("something_new", RefundStatus.PENDING),
    ]:
        assert connector.parse_refund_response(_refund(raw)).status is expected, raw
    refused = connector.parse_refund_response(
        {"error": {"code": "charge_already_refunded", "message": "Already refunded"}}
    )
    assert (refused.status, refused.failure_code) == (
        RefundStatus.FAILED,
        "charge_already_refunded",
    )
