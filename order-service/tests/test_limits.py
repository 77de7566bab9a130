"""POST /orders reserves against the user's limits at a real transaction-service, and fails closed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paygate_devstack.process import free_port

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def transaction_service(paygate_stack: Any) -> Any:
    """transaction-service as a subprocess; eur has a daily limit of 100.00 per user."""
    service = paygate_stack.start_service(
        "transaction", {"TRANSACTION_SERVICE_LIMITS": json.dumps({"eur": {"daily": 10_000}})}
    )
    yield service
    service.stop()
    if service in paygate_stack.started:
        paygate_stack.started.remove(service)


@pytest.fixture(scope="module")
async def svc(
    start_order_service: Any, paygate_stack: Any, transaction_service: Any
) -> AsyncIterator[Any]:
    async with start_order_service(
        limits_enabled=True,
        paygate_service_urls=json.dumps({"transaction": transaction_service.url}),
        service_token_secret=paygate_stack.env["SERVICE_TOKEN_SECRET"],
    ) as service:
        yield service


async def orders_of(svc: Any, user: uuid.UUID) -> int:
    rows = await svc.sql("SELECT count(*) FROM orders WHERE user_id = :u", u=user)
    return int(rows[0][0])


async def test_twenty_concurrent_orders_against_a_daily_limit_accept_exactly_ten(svc: Any) -> None:
    buyer = uuid.uuid4()
    answers = await asyncio.gather(
        *(svc.place(buyer, amount=1_000, currency="eur") for _ in range(20))
    )
    assert sorted(r.status_code for r in answers) == [201] * 10 + [422] * 10, [
        r.text for r in answers if r.status_code not in (201, 422)
    ]
    refused = [r for r in answers if r.status_code == 422]
    assert all(r.headers["content-type"].startswith(PROBLEM) for r in refused)
    assert {(r.json()["code"], r.json()["limit"]) for r in refused} == {("limit_exceeded", "daily")}
    # A refused order was rolled back: no row, no order.create event.
    assert await orders_of(svc, buyer) == 10


async def test_another_currency_has_its_own_default_limits(svc: Any) -> None:
    buyer = uuid.uuid4()
    r = await svc.place(buyer, amount=50_000)  # usd: the settings' defaults
    assert r.status_code == 201, r.text


async def test_orders_fail_closed_when_transaction_service_is_unreachable(svc: Any) -> None:
    client = svc.app.state.limits_client
    before = client.http.base_url
    client.http._client.base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    try:
        buyer = uuid.uuid4()
        r = await svc.place(buyer, amount=1_000)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "limits_unavailable"
        assert await orders_of(svc, buyer) == 0
    finally:
        client.http._client.base_url = before
    assert (await svc.place(uuid.uuid4(), amount=1_000)).status_code == 201


async def test_an_order_refused_for_its_method_gives_its_reservation_back(svc: Any) -> None:
    """The method check and the reservation run side by side; a refused order keeps nothing."""
    buyer = uuid.uuid4()
    foreign = svc.users.save_method(uuid.uuid4())
    refused = await svc.place(buyer, amount=10_000, currency="eur", payment_method_id=str(foreign))
    assert (refused.status_code, refused.json()["code"]) == (422, "payment_method_not_found")
    # The whole daily limit is free again: had the reservation stayed, this would be over it.
    accepted = await svc.place(buyer, amount=10_000, currency="eur")
    assert accepted.status_code == 201, accepted.text
    over = await svc.place(buyer, amount=100, currency="eur")
    assert (over.status_code, over.json()["code"]) == (422, "limit_exceeded")
    assert await orders_of(svc, buyer) == 1
