"""Payments left in `requires_action` are settled with their provider (workers/abandoned.py).

payment-service runs here with its own database and a public URL nobody listens on: the payer's
return and SSLCommerz's IPN are lost on the way, and no PayPal webhook is registered for it.
Time passing is the payment's last change (and creation) moved back past the window; the
sweeper inside the running service does the rest, against the PayPal and SSLCommerz stand-ins
and localstripe.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from payment_tests_support import (
    ALEMBIC_INI,
    LiveServer,
    Merchant,
    PaymentEvents,
    Stripe,
    UserServiceStandIn,
    free_port,
)
from sqlalchemy import func, select, update

from paygate_common.auth import SigningKey
from paygate_common.db import create_engine, create_sessionmaker
from paygate_common.migrations import upgrade_head
from paygate_devstack.events_testing import wait_for
from payment_service.main import create_app
from payment_service.settings import Settings
from payment_service.store.tables import outbox, payments

WINDOW = 3600.0


@pytest.fixture(scope="module")
async def abandoned_database(postgres: Any) -> str:
    url = str(await postgres.acreate_database())
    await asyncio.to_thread(upgrade_head, ALEMBIC_INI, database_url=url, db_schema="payments")
    return url


@pytest.fixture(scope="module")
def db(settings_factory: Callable[..., Settings], abandoned_database: str) -> Any:
    settings = settings_factory(database_url=abandoned_database)
    return create_sessionmaker(create_engine(settings, pool_size=2))


@pytest.fixture(scope="module")
async def sweeping_service(
    settings_factory: Callable[..., Settings], abandoned_database: str
) -> AsyncIterator[LiveServer]:
    lost = f"http://127.0.0.1:{free_port()}"  # returns and IPNs go here: nobody receives them
    app = create_app(
        settings_factory(
            database_url=abandoned_database,
            public_url=lost,
            checkout_base_url=lost,
            action_window_seconds=WINDOW,
            abandoned_interval_seconds=0.2,
        )
    )
    server = LiveServer(app)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def merchant(
    sweeping_service: LiveServer, signing_key: SigningKey, user_service: UserServiceStandIn
) -> Merchant:
    return Merchant(sweeping_service, signing_key, user_service.add_user("pm_card_visa", None))


async def waiting(merchant: Merchant, **body: Any) -> dict[str, Any]:
    r = await merchant.post("/payments", body)
    assert r.status_code == 202, r.text
    payment = await merchant.settled(r.json()["id"], {"requires_action", "failed"})
    assert payment["status"] == "requires_action", payment
    return payment


async def time_passes(db: Any, payment_id: str, seconds: float = WINDOW + 60) -> None:
    """The payment has waited `seconds` without any change (and was created that long ago)."""
    back = func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    async with db() as session, session.begin():
        await session.execute(
            update(payments)
            .where(payments.c.id == uuid.UUID(payment_id))
            .values(
                updated_at=payments.c.updated_at - back, created_at=payments.c.created_at - back
            )
        )


async def row(db: Any, payment_id: str) -> Any:
    async with db() as session:
        return (
            await session.execute(select(payments).where(payments.c.id == uuid.UUID(payment_id)))
        ).one()


async def outbox_events(db: Any, payment_id: str) -> list[dict[str, Any]]:
    """Envelopes written to the outbox about the payment (payment.* and audit.event)."""
    async with db() as session:
        rows = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).all()
    return [
        r.payload
        for r in rows
        if payment_id
        in (str(r.payload["payload"].get("payment_id")), r.payload["payload"].get("entity_id"))
    ]


async def ended(merchant: Merchant, payment_id: str) -> dict[str, Any]:
    return await merchant.settled(
        payment_id, {"succeeded", "requires_capture", "cancelled", "failed"}
    )


async def test_an_abandoned_paypal_payment_is_cancelled_action_expired_published_and_audited(
    merchant: Merchant, paypal: Any, db: Any, payment_events: PaymentEvents
) -> None:
    payment = await waiting(merchant, amount=4200, currency="usd", provider="paypal")
    order_id = payment["provider_reference"]
    await time_passes(db, payment["id"])

    cancelled = await ended(merchant, payment["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["failure_code"] == "action_expired"
    assert cancelled["next_action"] is None
    # Asked first: the order is still there, unapproved, and nothing was captured.
    assert paypal.orders[order_id]["status"] == "PAYER_ACTION_REQUIRED"
    assert paypal.orders[order_id]["capture_ids"] == []

    written = await outbox_events(db, payment["id"])
    kinds = [e["event_type"] for e in written]
    assert kinds[-2:] == ["payment.cancelled", "audit.event"] or kinds[-2:] == [
        "audit.event",
        "payment.cancelled",
    ]
    audit = next(e for e in written if e["event_type"] == "audit.event")
    assert audit["payload"]["action"] == "payment.action_expired"
    assert audit["payload"]["actor_role"] == "system"
    published = await wait_for(
        lambda: _cancelled_on_kafka(payment_events, payment["id"]), timeout=30
    )
    assert published.payload["failure_code"] == "action_expired"
    assert published.payload["provider"] == "paypal"

    # The payer approves late and comes back: the expired payment is not charged.
    async with httpx.AsyncClient() as browser:
        approval = payment["next_action"]["redirect_to_url"]["url"]
        assert (await browser.get(approval)).status_code == 302
    async with httpx.AsyncClient(base_url=merchant.url) as http:
        late = await http.get(
            f"/provider-return/paypal/{payment['id']}", params={"token": order_id}
        )
    assert late.json()["status"] == "cancelled"
    assert paypal.orders[order_id]["capture_ids"] == []


async def _cancelled_on_kafka(events: PaymentEvents, payment_id: str) -> Any:
    mine = await events.for_order(uuid.UUID(payment_id), count=2, timeout=1)
    return next((e for _, e in mine if e.event_type == "payment.cancelled"), None)


async def test_a_paypal_payment_approved_whose_return_and_webhook_were_lost_is_captured_once(
    merchant: Merchant, paypal: Any, db: Any
) -> None:
    payment = await waiting(merchant, amount=4300, currency="usd", provider="paypal")
    order_id = payment["provider_reference"]
    async with httpx.AsyncClient() as browser:  # approved at PayPal; the way back is lost
        approval = payment["next_action"]["redirect_to_url"]["url"]
        assert (await browser.get(approval)).status_code == 302
    assert paypal.orders[order_id]["status"] == "APPROVED"
    await time_passes(db, payment["id"])

    done = await ended(merchant, payment["id"])
    assert done["status"] == "succeeded"
    assert done["amount_captured"] == 4300
    assert len(paypal.orders[order_id]["capture_ids"]) == 1
    # Captured under the return route's own PayPal-Request-Id: a late return replays it.
    assert f"/v2/checkout/orders/{order_id}/capture|paygate-{payment['id']}-complete" in (
        paypal.replays
    )
    async with httpx.AsyncClient(base_url=merchant.url) as http:
        late = await http.get(
            f"/provider-return/paypal/{payment['id']}", params={"token": order_id}
        )
    assert late.json()["status"] == "succeeded"
    assert len(paypal.orders[order_id]["capture_ids"]) == 1


async def test_a_manual_paypal_payment_approved_and_lost_is_authorised_not_captured(
    merchant: Merchant, paypal: Any, db: Any
) -> None:
    payment = await waiting(
        merchant, amount=4400, currency="usd", provider="paypal", capture_method="manual"
    )
    async with httpx.AsyncClient() as browser:
        assert (
            await browser.get(payment["next_action"]["redirect_to_url"]["url"])
        ).status_code == 302
    await time_passes(db, payment["id"])

    done = await ended(merchant, payment["id"])
    assert done["status"] == "requires_capture"
    assert done["amount_capturable"] == 4400
    order = paypal.orders[payment["provider_reference"]]
    assert len(order["authorization_ids"]) == 1 and order["capture_ids"] == []


async def test_a_paypal_order_expired_at_paypal_is_cancelled_action_expired(
    merchant: Merchant, paypal: Any, db: Any
) -> None:
    payment = await waiting(merchant, amount=4500, currency="usd", provider="paypal")
    # PayPal's 3-hour approval window is over: GET /v2/checkout/orders/{id} answers 404.
    paypal.orders[payment["provider_reference"]]["approve_before"] = "2000-01-01T00:00:00+00:00"
    await time_passes(db, payment["id"])

    cancelled = await ended(merchant, payment["id"])
    assert (cancelled["status"], cancelled["failure_code"]) == ("cancelled", "action_expired")


async def test_paypal_unreachable_keeps_the_payment_waiting_and_asks_again_with_backoff(
    merchant: Merchant, paypal: Any, db: Any
) -> None:
    payment = await waiting(merchant, amount=4600, currency="usd", provider="paypal")
    paypal.standin.outage = True
    try:
        await time_passes(db, payment["id"])

        async def asked_twice() -> Any:
            current = await row(db, payment["id"])
            return current if current.action_checks >= 2 else None

        deferred = await wait_for(asked_twice, timeout=30)
        assert deferred.status == "requires_action"  # never cancelled blind
        assert deferred.failure_code is None
        assert paypal.orders[payment["provider_reference"]]["status"] == "PAYER_ACTION_REQUIRED"
    finally:
        paypal.standin.outage = False

    cancelled = await ended(merchant, payment["id"])
    assert (cancelled["status"], cancelled["failure_code"]) == ("cancelled", "action_expired")


async def test_an_sslcommerz_payment_paid_whose_return_and_ipn_were_lost_completes_once_validated(
    merchant: Merchant, sslcommerz: Any, db: Any
) -> None:
    payment = await waiting(merchant, amount=150000, currency="bdt", provider="sslcommerz")
    async with httpx.AsyncClient() as browser:  # paid at the gateway; the page's POST is not sent
        page = await browser.get(payment["next_action"]["redirect_to_url"]["url"])
    assert page.status_code == 200
    session = next(s for s in sslcommerz.sessions.values() if s["form"]["tran_id"] == payment["id"])
    assert session["status"] == "VALID"
    await time_passes(db, payment["id"])

    done = await ended(merchant, payment["id"])
    assert done["status"] == "succeeded"
    assert done["amount_captured"] == 150000
    # The validation API was asked about the transaction's val_id before it counted.
    assert sslcommerz.transactions[session["val_id"]]["validated"] is True


async def test_an_sslcommerz_transaction_paid_for_another_amount_is_neither_paid_nor_cancelled(
    merchant: Merchant, sslcommerz: Any, db: Any
) -> None:
    payment = await waiting(merchant, amount=130000, currency="bdt", provider="sslcommerz")
    async with httpx.AsyncClient() as browser:
        await browser.get(payment["next_action"]["redirect_to_url"]["url"])
    session = next(s for s in sslcommerz.sessions.values() if s["form"]["tran_id"] == payment["id"])
    # What SSLCommerz holds for our tran_id says 1.00 BDT was paid, not 1300.00.
    paid = sslcommerz.transactions[session["val_id"]]["fields"]
    paid["amount"] = paid["currency_amount"] = "1.00"
    await time_passes(db, payment["id"])

    async def looked_up_twice() -> Any:
        current = await row(db, payment["id"])
        return current if current.action_checks >= 2 else None

    held = await wait_for(looked_up_twice, timeout=30)
    assert held.status == "requires_action"  # a person must look: not paid, not cancelled
    assert held.failure_code is None and held.amount_captured == 0


async def test_an_sslcommerz_payment_never_paid_is_cancelled_action_expired(
    merchant: Merchant, db: Any
) -> None:
    payment = await waiting(merchant, amount=120000, currency="bdt", provider="sslcommerz")
    await time_passes(db, payment["id"])

    cancelled = await ended(merchant, payment["id"])
    assert (cancelled["status"], cancelled["failure_code"]) == ("cancelled", "action_expired")


async def test_a_stripe_3ds_payment_left_unauthenticated_is_cancelled_at_stripe_too(
    merchant: Merchant, stripe_api: Stripe, db: Any
) -> None:
    method = await stripe_api.card_method("4000002500003155")
    payment = await waiting(merchant, amount=2000, currency="usd", payment_method=method)
    await time_passes(db, payment["id"])

    cancelled = await ended(merchant, payment["id"])
    assert (cancelled["status"], cancelled["failure_code"]) == ("cancelled", "action_expired")
    intent = await stripe_api.intent(payment["provider_reference"])
    assert intent["status"] == "canceled"


async def test_an_unpaid_hosted_checkout_is_cancelled_when_its_page_expires(
    merchant: Merchant, db: Any, sweeping_service: LiveServer
) -> None:
    body = {
        "amount": 2500,
        "currency": "usd",
        "checkout": True,
        "return_url": "https://shop.example.com/orders/7",
    }
    r = await merchant.post("/payments", body)
    assert r.status_code == 202, r.text
    payment = r.json()
    assert payment["status"] == "requires_action"
    ttl = sweeping_service.app.state.settings.checkout_ttl_seconds
    await time_passes(db, payment["id"], seconds=ttl + 60)

    cancelled = await ended(merchant, payment["id"])
    assert (cancelled["status"], cancelled["failure_code"]) == ("cancelled", "action_expired")
