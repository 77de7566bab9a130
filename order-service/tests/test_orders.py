"""Orders API, Idempotency-Key, payment events and the sweeper, on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paygate_common.events import PaymentStatus

PROBLEM = "application/problem+json"
CONTEXT_FIELDS = (
    "payment_method_id",
    "payment_method_provider",
    "payment_method_token",
    "provider_customer_id",
)


@pytest.fixture(scope="module")
async def svc(start_order_service: Any) -> AsyncIterator[Any]:
    # One app per module: a second consumer in group `order-service` waits ~15 s for the broker
    # to forget the first one, so the sweeper tests below reuse this app with a short timeout.
    async with start_order_service(sweep_interval_seconds=0.2, sweep_batch_size=2) as service:
        yield service


@pytest.fixture
def stale_after_one_second(svc: Any) -> Any:
    """The sweeper (already running every 0.2 s) treats orders as stale after 1 s."""
    settings = svc.settings
    before = settings.pending_timeout_seconds
    settings.pending_timeout_seconds = 1.0
    yield
    settings.pending_timeout_seconds = before


def new_user() -> uuid.UUID:
    return uuid.uuid4()


# --- creating orders ------------------------------------------------------------------------


async def test_placing_an_order_returns_201_pending_and_publishes_order_create(
    svc: Any, read_topic: Any
) -> None:
    buyer = new_user()
    method = svc.users.save_method(buyer)
    r = await svc.place(buyer, amount=1999, description="T-shirt", payment_method_id=str(method))
    assert r.status_code == 201, r.text
    order = r.json()
    assert set(order) >= {
        "id",
        "user_id",
        "amount",
        "currency",
        "description",
        "payment_method_id",
        "status",
        "created_at",
        "updated_at",
        "payment",
    }
    assert order["status"] == "pending"
    assert order["user_id"] == str(buyer)
    assert (order["amount"], order["currency"]) == (1999, "usd")
    assert order["description"] == "T-shirt"
    assert order["payment_method_id"] == str(method)
    assert order["payment"] is None
    assert r.headers["location"] == f"/orders/{order['id']}"

    messages = await read_topic(svc.bootstrap, "order.create", key=order["id"])
    assert [m.event_type for m in messages] == ["order.created"]
    envelope = messages[0]
    assert envelope.aggregate_id == order["id"]
    assert envelope.producer == "order-service"
    assert envelope.payload == {
        "order_id": order["id"],
        "user_id": str(buyer),
        "amount": 1999,
        "currency": "usd",
        "description": "T-shirt",
        "payment_method_id": str(method),
        # The payment context read when the order was taken: payment-service charges with it.
        "payment_method_provider": "stripe",
        "payment_method_token": svc.users.method(method).token,
        "provider_customer_id": svc.users.customers[buyer],
    }


async def test_one_payment_context_call_per_order_and_the_default_method_travels_too(
    svc: Any, read_topic: Any
) -> None:
    buyer = new_user()
    default = svc.users.save_method(buyer)
    svc.users.save_method(buyer)
    before = svc.users.calls
    r = await svc.place(buyer, amount=1200)
    assert r.status_code == 201, r.text
    assert svc.users.calls == before + 1
    order = r.json()
    assert order["payment_method_id"] is None  # the order says what the customer asked for
    (envelope,) = await read_topic(svc.bootstrap, "order.create", key=order["id"])
    payload = envelope.payload
    assert payload["payment_method_id"] == str(default)
    assert payload["payment_method_token"] == svc.users.method(default).token
    assert payload["provider_customer_id"] == svc.users.customers[buyer]


async def test_without_a_saved_method_the_order_goes_without_a_context(
    svc: Any, read_topic: Any
) -> None:
    r = await svc.place(new_user(), amount=800)
    assert r.status_code == 201, r.text
    (envelope,) = await read_topic(svc.bootstrap, "order.create", key=r.json()["id"])
    assert {k: envelope.payload[k] for k in CONTEXT_FIELDS} == dict.fromkeys(CONTEXT_FIELDS)


async def test_user_service_down_refuses_a_named_method_but_not_the_default(
    svc: Any, read_topic: Any
) -> None:
    buyer = new_user()
    method = svc.users.save_method(buyer)
    svc.users.down = True
    try:
        named = await svc.place(buyer, payment_method_id=str(method))
        default = await svc.place(buyer, amount=900)
    finally:
        svc.users.down = False
    assert (named.status_code, named.json()["code"]) == (503, "user_service_unavailable")
    assert named.headers["retry-after"] == "2"
    # Taking the order does not depend on user-service: payment-service asks when it charges.
    assert default.status_code == 201, default.text
    (envelope,) = await read_topic(svc.bootstrap, "order.create", key=default.json()["id"])
    assert {k: envelope.payload[k] for k in CONTEXT_FIELDS} == dict.fromkeys(CONTEXT_FIELDS)


async def test_the_order_row_and_its_event_are_written_together(svc: Any) -> None:
    r = await svc.place(new_user(), amount=250)
    order_id = r.json()["id"]
    rows = await svc.sql("SELECT topic, event_type FROM outbox WHERE key = :key", key=order_id)
    assert [tuple(row) for row in rows] == [("order.create", "order.created")]


async def test_currency_is_normalised_to_lowercase(svc: Any) -> None:
    r = await svc.http.post(
        "/orders", json={"amount": 100, "currency": "EUR"}, headers=svc.auth(new_user())
    )
    assert r.status_code == 201
    assert r.json()["currency"] == "eur"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 0, "currency": "usd"}, 422, "validation_error"),
        ({"amount": -5, "currency": "usd"}, 422, "validation_error"),
        ({"amount": 10.5, "currency": "usd"}, 422, "validation_error"),
        ({"amount": "100", "currency": "usd"}, 422, "validation_error"),
        ({"amount": 100, "currency": "xyz"}, 422, "validation_error"),
        ({"amount": 100}, 422, "validation_error"),
        ({"amount": 100, "currency": "usd", "status": "paid"}, 422, "validation_error"),
        ({"amount": 100, "currency": "usd", "payment_method_id": "nope"}, 422, "validation_error"),
        ({"amount": 100, "currency": "usd", "description": "x" * 501}, 422, "validation_error"),
    ],
    ids=[
        "zero",
        "negative",
        "float",
        "string",
        "unknown-currency",
        "missing-currency",
        "unknown-field",
        "bad-method-id",
        "long-description",
    ],
)
async def test_invalid_bodies_are_refused_with_problem_json(
    svc: Any, body: dict[str, Any], status: int, code: str
) -> None:
    buyer = new_user()
    r = await svc.http.post("/orders", json=body, headers=svc.auth(buyer))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code
    listing = await svc.http.get("/orders", headers=svc.auth(buyer))
    assert listing.json()["items"] == []


async def test_malformed_json_is_a_400(svc: Any) -> None:
    r = await svc.http.post(
        "/orders",
        content=b'{"amount": 100, "currency": ',
        headers={**svc.auth(new_user()), "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "malformed_json"


async def test_without_a_token_it_is_401(svc: Any) -> None:
    r = await svc.http.post("/orders", json={"amount": 100, "currency": "usd"})
    assert r.status_code == 401
    assert r.json()["code"] == "token_missing"
    assert (await svc.http.get("/orders")).status_code == 401


# --- reading orders -------------------------------------------------------------------------


async def test_only_the_owner_or_an_admin_sees_an_order(svc: Any) -> None:
    owner, stranger, admin = new_user(), new_user(), new_user()
    order = (await svc.place(owner)).json()
    for path in (f"/orders/{order['id']}", f"/orders/{order['id']}/status"):
        mine = await svc.http.get(path, headers=svc.auth(owner))
        theirs = await svc.http.get(path, headers=svc.auth(stranger))
        admins = await svc.http.get(path, headers=svc.auth(admin, role="admin"))
        assert mine.status_code == 200
        assert theirs.status_code == 404
        assert theirs.json()["code"] == "order_not_found"
        assert admins.status_code == 200
        assert admins.json()["id"] == order["id"]
    # The stranger's 404 is the same as for an order that does not exist.
    missing = await svc.http.get(f"/orders/{uuid.uuid4()}", headers=svc.auth(stranger))
    garbage = await svc.http.get("/orders/not-a-uuid", headers=svc.auth(stranger))
    assert missing.status_code == garbage.status_code == 404
    assert missing.json()["code"] == garbage.json()["code"] == "order_not_found"


async def test_status_endpoint_returns_id_and_status(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    r = await svc.http.get(f"/orders/{order['id']}/status", headers=svc.auth(buyer))
    assert r.json() == {"id": order["id"], "status": "pending"}


async def test_listing_is_newest_first_paginated_and_only_mine(svc: Any) -> None:
    buyer, other = new_user(), new_user()
    placed = [(await svc.place(buyer, amount=100 + i)).json()["id"] for i in range(5)]
    await svc.place(other)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await svc.http.get("/orders", params=params, headers=svc.auth(buyer))
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(placed))
    everything = (await svc.http.get("/orders", headers=svc.auth(buyer))).json()
    assert [o["id"] for o in everything["items"]] == list(reversed(placed))
    assert everything["next_cursor"] is None


async def test_a_forged_cursor_or_limit_is_a_422(svc: Any) -> None:
    headers = svc.auth(new_user())
    bad_cursor = await svc.http.get("/orders", params={"cursor": "garbage!!"}, headers=headers)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["code"] == "invalid_cursor"
    bad_limit = await svc.http.get("/orders", params={"limit": 0}, headers=headers)
    assert bad_limit.status_code == 422
    assert bad_limit.json()["code"] == "validation_error"


# --- Idempotency-Key ------------------------------------------------------------------------


async def orders_of(svc: Any, user_id: uuid.UUID) -> list[str]:
    rows = await svc.sql("SELECT id FROM orders WHERE user_id = :u", u=user_id)
    return [str(r[0]) for r in rows]


async def events_for(svc: Any, order_ids: list[str]) -> int:
    rows = await svc.sql(
        "SELECT count(*) FROM outbox WHERE topic = 'order.create' AND key = ANY(:keys)",
        keys=order_ids,
    )
    return int(rows[0][0])


async def test_same_key_and_body_twice_makes_one_order_and_one_event(svc: Any) -> None:
    buyer = new_user()
    first = await svc.place(buyer, amount=1200, key="retry-me")
    again = await svc.place(buyer, amount=1200, key="retry-me")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await orders_of(svc, buyer) == [first.json()["id"]]
    assert await events_for(svc, [first.json()["id"]]) == 1


async def test_same_key_with_another_body_is_a_422(svc: Any) -> None:
    buyer = new_user()
    assert (await svc.place(buyer, amount=1200, key="k")).status_code == 201
    reused = await svc.place(buyer, amount=1300, key="k")
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith(PROBLEM)
    assert reused.json()["code"] == "idempotency_key_reused"
    assert len(await orders_of(svc, buyer)) == 1


async def test_the_same_key_from_another_user_is_another_order(svc: Any) -> None:
    a, b = new_user(), new_user()
    ra = await svc.place(a, key="shared")
    rb = await svc.place(b, key="shared")
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]


async def test_ten_concurrent_requests_with_one_key_make_one_order(svc: Any) -> None:
    buyer = new_user()
    storm = await asyncio.gather(*(svc.place(buyer, amount=3300, key="storm") for _ in range(10)))
    codes = [r.status_code for r in storm]
    assert set(codes) <= {201, 409}, codes
    for r in storm:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_progress"
    ids = {r.json()["id"] for r in storm if r.status_code == 201}
    assert len(ids) == 1
    assert await orders_of(svc, buyer) == list(ids)
    assert await events_for(svc, list(ids)) == 1


async def test_a_garbage_idempotency_key_is_refused(svc: Any) -> None:
    buyer = new_user()
    r = await svc.place(buyer, key="x" * 300)
    assert r.status_code == 400
    assert r.json()["code"] == "idempotency_key_invalid"
    assert await orders_of(svc, buyer) == []


# --- payment.event drives the status --------------------------------------------------------


async def test_payment_succeeded_makes_the_order_paid_with_a_payment_summary(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    payment_id = uuid.uuid4()
    await svc.pay(order, PaymentStatus.SUCCEEDED, payment_id=payment_id, provider_reference="pi_1")
    paid = await svc.wait_status(order, "paid", timeout=10)
    assert paid["payment"] == {
        "payment_id": str(payment_id),
        "provider": "stripe",
        "failure_code": None,
        "failure_message": None,
        "next_action": None,
    }


async def test_a_failure_after_paid_is_ignored(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    await svc.pay(order, PaymentStatus.SUCCEEDED)
    await svc.wait_status(order, "paid")
    late = await svc.pay(
        order, PaymentStatus.FAILED, failure_code="card_declined", failure_message="declined"
    )
    await svc.applied(late)
    after = await svc.order(order["id"], buyer)
    assert after["status"] == "paid"
    assert after["payment"]["failure_code"] is None


async def test_requires_action_then_succeeded_ends_paid(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    payment_id = uuid.uuid4()
    await svc.pay(
        order,
        PaymentStatus.REQUIRES_ACTION,
        payment_id=payment_id,
        next_action={"type": "redirect_to_url", "url": "https://example.test/3ds"},
    )
    waiting = await svc.wait_status(order, "requires_action")
    assert waiting["payment"]["next_action"] == {
        "type": "redirect_to_url",
        "url": "https://example.test/3ds",
    }
    await svc.pay(order, PaymentStatus.SUCCEEDED, payment_id=payment_id)
    paid = await svc.wait_status(order, "paid")
    assert paid["payment"]["next_action"] is None


async def test_a_failed_payment_fails_the_order_and_says_why(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    await svc.pay(
        order,
        PaymentStatus.FAILED,
        failure_code="card_declined",
        failure_message="Your card was declined.",
    )
    failed = await svc.wait_status(order, "failed")
    assert failed["payment"]["failure_code"] == "card_declined"
    assert failed["payment"]["failure_message"] == "Your card was declined."
    # failed is terminal: a late success does not resurrect it.
    late = await svc.pay(order, PaymentStatus.SUCCEEDED)
    await svc.applied(late)
    assert (await svc.order(order["id"], buyer))["status"] == "failed"


async def test_paid_then_refunded(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    await svc.pay(order, PaymentStatus.SUCCEEDED)
    await svc.wait_status(order, "paid")
    await svc.pay(order, PaymentStatus.REFUNDED)
    await svc.wait_status(order, "refunded")


async def test_a_redelivered_event_is_applied_once(svc: Any) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    payment_id = uuid.uuid4()
    first = await svc.pay(
        order, PaymentStatus.REQUIRES_ACTION, payment_id=payment_id, next_action={"url": "a"}
    )
    await svc.applied(first)
    second = await svc.pay(
        order, PaymentStatus.REQUIRES_ACTION, payment_id=payment_id, next_action={"url": "b"}
    )
    await svc.applied(second)
    assert (await svc.order(order["id"], buyer))["payment"]["next_action"] == {"url": "b"}
    # The first event again (same event id): if it were applied, next_action would go back to a.
    await svc.pay(order, PaymentStatus.REQUIRES_ACTION, envelope=first)
    marker = await svc.pay(order, PaymentStatus.PENDING, payment_id=payment_id)
    await svc.applied(marker)  # same partition, after the duplicate: the duplicate was consumed
    detail = await svc.order(order["id"], buyer)
    assert detail["status"] == "requires_action"
    assert detail["payment"]["next_action"] == {"url": "b"}
    rows = await svc.sql(
        "SELECT count(*) FROM inbox WHERE consumer = 'order-service' AND event_id = :id",
        id=first.event_id,
    )
    assert rows[0][0] == 1


# --- the sweeper: stale pending orders are cancelled and announced on order.event -----------


async def test_a_stale_pending_order_is_cancelled_and_announced(
    svc: Any, read_topic: Any, stale_after_one_second: None
) -> None:
    buyer = uuid.uuid4()
    order = (await svc.place(buyer)).json()
    assert order["status"] == "pending"
    cancelled = await svc.wait_status(order, "cancelled", timeout=10)
    assert cancelled["cancel_reason"] == "payment_timeout"

    messages = await read_topic(svc.bootstrap, "order.event", key=order["id"])
    assert [m.event_type for m in messages] == ["order.cancelled"]
    assert messages[0].payload == {
        "order_id": order["id"],
        "user_id": str(buyer),
        "reason": "payment_timeout",
    }


async def test_more_stale_orders_than_one_batch_are_all_cancelled(
    svc: Any, stale_after_one_second: None
) -> None:
    buyer = uuid.uuid4()
    orders = [(await svc.place(buyer)).json() for _ in range(5)]
    for order in orders:
        await svc.wait_status(order, "cancelled", timeout=10)
    rows = await svc.sql(
        "SELECT count(*) FROM outbox WHERE topic = 'order.event' AND key = ANY(:keys)",
        keys=[o["id"] for o in orders],
    )
    assert rows[0][0] == 5


async def test_a_settled_order_is_not_cancelled_and_a_late_payment_cannot_revive_one(
    svc: Any, stale_after_one_second: None
) -> None:
    buyer = uuid.uuid4()
    paid = (await svc.place(buyer)).json()
    stale = (await svc.place(buyer)).json()
    await svc.pay(paid, PaymentStatus.SUCCEEDED)
    await svc.wait_status(paid, "paid", timeout=5)
    await svc.wait_status(stale, "cancelled", timeout=10)
    await asyncio.sleep(1.5)
    assert (await svc.order(paid["id"], buyer))["status"] == "paid"

    late = await svc.pay(stale, PaymentStatus.SUCCEEDED)
    await svc.applied(late)
    assert (await svc.order(stale["id"], buyer))["status"] == "cancelled"


# --- cancel and refund --------------------------------------------------------------------------


async def test_a_pending_order_is_cancelled_once_and_payment_service_is_told(
    svc: Any, read_topic: Any
) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    r = await svc.http.post(f"/orders/{order['id']}/cancel", headers=svc.auth(buyer))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "customer_cancelled")
    again = await svc.http.post(f"/orders/{order['id']}/cancel", headers=svc.auth(buyer))
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    messages = await read_topic(svc.bootstrap, "order.event", key=order["id"])
    assert [(m.event_type, m.payload["reason"]) for m in messages] == [
        ("order.cancelled", "customer_cancelled")
    ]


async def test_a_cancelled_order_whose_charge_won_the_race_ends_refunded_not_paid(
    svc: Any,
) -> None:
    buyer = new_user()
    order = (await svc.place(buyer)).json()
    assert (
        await svc.http.post(f"/orders/{order['id']}/cancel", headers=svc.auth(buyer))
    ).status_code == 200
    payment_id = uuid.uuid4()
    late = await svc.pay(order, PaymentStatus.SUCCEEDED, payment_id=payment_id)
    await svc.applied(late)
    assert (await svc.order(order["id"], buyer))[
        "status"
    ] == "cancelled"  # never paid-but-cancelled
    # payment-service refunds such a charge on its own; the order says so.
    await svc.pay(order, PaymentStatus.REFUNDED, payment_id=payment_id)
    refunded = await svc.wait_status(order, "refunded")
    assert refunded["cancel_reason"] == "customer_cancelled"


async def test_a_paid_order_is_refunded_through_order_refund_requested(
    svc: Any, read_topic: Any
) -> None:
    buyer = new_user()
    order = (await svc.place(buyer, amount=2000)).json()
    pending = await svc.http.post(f"/orders/{order['id']}/refund", headers=svc.auth(buyer))
    assert pending.status_code == 409 and pending.json()["code"] == "invalid_state"

    payment_id = uuid.uuid4()
    await svc.pay(order, PaymentStatus.SUCCEEDED, payment_id=payment_id)
    await svc.wait_status(order, "paid")
    too_much = await svc.http.post(
        f"/orders/{order['id']}/refund", json={"amount": 2001}, headers=svc.auth(buyer)
    )
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_captured"

    headers = {**svc.auth(buyer), "Idempotency-Key": "refund-order-1"}
    r = await svc.http.post(f"/orders/{order['id']}/refund", json={"amount": 500}, headers=headers)
    replay = await svc.http.post(
        f"/orders/{order['id']}/refund", json={"amount": 500}, headers=headers
    )
    assert (r.status_code, r.json()["status"]) == (202, "paid"), r.text
    assert replay.status_code == 202 and replay.headers.get("idempotent-replayed") == "true"
    full = await svc.http.post(f"/orders/{order['id']}/refund", headers=svc.auth(buyer))
    assert full.status_code == 202

    messages = await read_topic(svc.bootstrap, "order.event", key=order["id"], wanted=2)
    assert [(m.event_type, m.payload["amount"]) for m in messages] == [
        ("order.refund_requested", 500),
        ("order.refund_requested", None),
    ]
    audits = await svc.sql(
        "SELECT payload->'payload'->>'action' FROM outbox WHERE topic = 'audit.event' AND key = :k",
        k=order["id"],
    )
    assert [a for (a,) in audits] == ["payment.refund_requested"] * 2

    partly = await svc.pay(order, PaymentStatus.PARTIALLY_REFUNDED, payment_id=payment_id)
    await svc.applied(partly)
    assert (await svc.order(order["id"], buyer))["status"] == "paid"
    await svc.pay(order, PaymentStatus.REFUNDED, payment_id=payment_id)
    await svc.wait_status(order, "refunded")


async def test_nobody_else_cancels_or_refunds_an_order(svc: Any) -> None:
    order = (await svc.place(new_user())).json()
    stranger = svc.auth(new_user())
    for action in ("cancel", "refund"):
        r = await svc.http.post(f"/orders/{order['id']}/{action}", headers=stranger)
        assert (r.status_code, r.json()["code"]) == (404, "order_not_found")


async def test_an_order_naming_someone_elses_method_or_too_little_is_refused(svc: Any) -> None:
    buyer, other = new_user(), new_user()
    theirs = svc.users.save_method(other)
    foreign = await svc.place(buyer, payment_method_id=str(theirs))
    unknown = await svc.place(buyer, payment_method_id=str(uuid.uuid4()))
    assert (foreign.status_code, foreign.json()["code"]) == (422, "payment_method_not_found")
    assert foreign.json()["detail"] == unknown.json()["detail"]  # no hint it exists for someone
    small = await svc.place(buyer, amount=49)
    assert (small.status_code, small.json()["code"]) == (422, "amount_below_minimum")
    mine = await svc.place(buyer, payment_method_id=str(svc.users.save_method(buyer)))
    assert mine.status_code == 201


async def test_an_idempotency_replay_compares_the_normalised_body(svc: Any) -> None:
    buyer = new_user()
    headers = {**svc.auth(buyer), "Idempotency-Key": "normalised-1"}
    first = await svc.http.post("/orders", json={"amount": 700, "currency": "USD"}, headers=headers)
    again = await svc.http.post("/orders", json={"amount": 700, "currency": "usd"}, headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
