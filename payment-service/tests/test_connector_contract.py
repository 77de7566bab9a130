"""One contract, every connector: the same scenarios give the same PaymentStatus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from payment_tests_support import ALEMBIC_INI, Stripe

from paygate_common.db import create_engine
from paygate_common.events import PaymentStatus
from paygate_common.migrations import upgrade_head
from payment_service.connectors import build_connector
from payment_service.connectors.base import PaymentContext, idempotency_key
from payment_service.connectors.stripe import StripeConnector
from payment_service.settings import Settings

# scenario → (Stripe test token or card number, expected status)
SCENARIOS = {
    "approved": ("pm_card_visa", PaymentStatus.SUCCEEDED),
    "declined": ("pm_card_chargeCustomerFail", PaymentStatus.FAILED),
    "needs_3ds": ("card:4000002500003155", PaymentStatus.REQUIRES_ACTION),
}
SANDBOX_3DS_TOKEN = "pm_card_threeDSecure2Required"


@pytest.fixture(scope="module")
async def contract_database(postgres: Any) -> str:
    url = str(await postgres.acreate_database())
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="payments")
    return url


@pytest.fixture(params=["stripe", "sandbox"])
async def connector_under_test(
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., Settings],
    contract_database: str,
    stripe_api: Stripe,
) -> AsyncIterator[tuple[Any, Any, Callable[[str], Any]]]:
    settings = settings_factory(database_url=contract_database, connector=request.param)
    engine = create_engine(settings, pool_size=2)
    connector, transport = build_connector(settings, engine=engine)

    async def method_for(token: str) -> tuple[str, str | None]:
        if request.param == "sandbox":
            return (SANDBOX_3DS_TOKEN if token.startswith("card:") else token), None
        if token.startswith("card:"):
            token = await stripe_api.card_method(token.removeprefix("card:"))
        customer, pm = await stripe_api.customer_with(token)
        return pm, customer

    yield connector, transport, method_for
    await transport.aclose()
    await engine.dispose()


def context(token: str, customer: str | None) -> PaymentContext:
    payment_id = uuid.uuid4()
    return PaymentContext(
        payment_id=payment_id,
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        amount=4200,
        currency="usd",
        attempt_no=1,
        idempotency_key=idempotency_key(payment_id, 1),
        payment_method_token=token,
        provider_customer_id=customer,
    )


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_connector_maps_the_scenario_to_the_same_status(
    connector_under_test: Any, scenario: str
) -> None:
    connector, transport, method_for = connector_under_test
    token, expected = SCENARIOS[scenario]
    payment = context(*(await method_for(token)))

    request = connector.build_authorize_request(payment)
    result = connector.parse_authorize_response(await transport.send(request))

    assert result.status == expected
    assert request.idempotency_key == payment.idempotency_key
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
        assert connector.parse_authorize_response(found).provider_reference == (
            result.provider_reference
        )


async def test_every_connector_finds_nothing_for_a_payment_it_never_saw(
    connector_under_test: Any,
) -> None:
    _, transport, _ = connector_under_test
    assert await transport.find_payment(uuid.uuid4()) is None


@pytest.mark.parametrize(
    ("pi_status", "expected"),
    [
        ("succeeded", PaymentStatus.SUCCEEDED),
        ("requires_action", PaymentStatus.REQUIRES_ACTION),
        ("processing", PaymentStatus.PENDING),
        ("requires_payment_method", PaymentStatus.FAILED),
        ("requires_capture", PaymentStatus.PENDING),
        ("requires_confirmation", PaymentStatus.PENDING),
        ("canceled", PaymentStatus.CANCELLED),
        ("something_new", PaymentStatus.PENDING),
    ],
)
def test_stripe_maps_every_payment_intent_status_explicitly(
    pi_status: str, expected: PaymentStatus
) -> None:
    result = StripeConnector().parse_authorize_response(
        {
            "id": "pi_1",
            "status": pi_status,
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
