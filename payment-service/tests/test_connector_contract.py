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

import pytest
from payment_tests_support import ALEMBIC_INI, Stripe

from paygate_common.db import create_engine
from paygate_common.events import PaymentStatus, RefundStatus
from paygate_common.migrations import upgrade_head
from payment_service.connectors import build_connector
from payment_service.connectors.base import (
    CaptureContext,
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

    return {
        "stripe": Harness("stripe", stripe_method, STRIPE_WEBHOOKS),
        "sandbox": Harness("sandbox", sandbox_method),
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


def context(token: str, customer: str | None, capture_method: str = "automatic") -> PaymentContext:
    payment_id = uuid.uuid4()
    return PaymentContext(
        payment_id=payment_id,
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        amount=AMOUNT,
        currency="usd",
        attempt_no=1,
        idempotency_key=idempotency_key(payment_id, 1),
        payment_method_token=token,
        provider_customer_id=customer,
        capture_method=capture_method,
    )


async def authorise(provider: Any, scenario: str, capture_method: str = "automatic") -> Any:
    connector, transport, harness = provider
    payment = context(*(await harness.method_for(scenario)), capture_method=capture_method)
    request = connector.build_authorize_request(payment)
    assert request.idempotency_key == payment.idempotency_key
    return payment, connector.parse_authorize_response(await transport.send(request))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_authorisation_maps_the_scenario_to_the_same_status(
    provider: Any, scenario: str
) -> None:
    connector, transport, _ = provider
    payment, result = await authorise(provider, scenario)
    expected = SCENARIOS[scenario]
    assert result.status == expected
    if expected is PaymentStatus.FAILED:
        assert result.failure_code == "card_declined"
        assert result.failure_message
    if expected is PaymentStatus.REQUIRES_ACTION:
        assert result.next_action and result.next_action["type"]
        assert "secret" not in repr(result.next_action)
    if expected is not PaymentStatus.FAILED:
        # What was created can be found again by our payment id (reconciliation relies on it).
        found = await transport.find_payment(payment.payment_id)
        assert found is not None
        again = connector.parse_authorize_response(found)
        assert again.provider_reference == result.provider_reference
        by_reference = await transport.retrieve_payment(result.provider_reference)
        assert connector.parse_authorize_response(by_reference).status == expected


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

    # A second capture is refused by the provider as an answer, not an exception.
    again = connector.parse_capture_response(await transport.send(request))
    assert again.status is PaymentStatus.FAILED and again.failure_code


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
        found = await transport.find_refund(refund_id, provider_reference=paid.provider_reference)
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
            assert update is None, event["type"]
            continue
        assert update is not None, event["type"]
        assert (update.payment.status if update.payment else None) == payment_status
        assert [r.status for r in update.refunds] == refund_statuses
        assert update.provider_reference == "pi_1"


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
