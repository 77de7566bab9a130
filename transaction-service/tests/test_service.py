"""The service end to end in process: limits, history, balances, analytics, the trial balance.

Real PostgreSQL, Redis and Kafka underneath; payment events are published to the broker as
payment-service publishes them and consumed by the service's own consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paygate_common.events import (
    ConfigChanged,
    OrderCancelled,
    PaymentStatus,
    RefundEvent,
    RefundStatus,
    new_event,
)
from paygate_common.events.topics import CONFIG_CHANGED, ORDER_EVENT
from paygate_devstack.events_testing import wait_for

PROBLEM = "application/problem+json"
S = PaymentStatus
RESERVATIONS = "/internal/limits/reservations"


@pytest.fixture(scope="module")
async def svc(start_transaction_service: Any) -> AsyncIterator[Any]:
    # One app per module: a second consumer in the same group waits for the broker to forget
    # the first. Limits: eur has a daily limit of 100.00 here.
    async with start_transaction_service(
        limits={
            "eur": {"daily": 10_000, "per_transaction": 5_000},
            # A month smaller than a day: the second counter refuses what the first took.
            "chf": {"daily": 10_000, "monthly": 6_000},
        },
        fee_basis_points=290,
        fee_fixed=30,
    ) as service:
        yield service


async def reserve(
    svc: Any, user: uuid.UUID, amount: int, currency: str = "eur", ref: Any = None
) -> Any:
    body = {
        "reference_id": str(ref or uuid.uuid4()),
        "user_id": str(user),
        "amount": amount,
        "currency": currency,
    }
    return await svc.http.post(RESERVATIONS, json=body, headers=svc.service_auth())


def captured(
    make_payment_event: Any, payment: uuid.UUID, merchant: uuid.UUID, amount: int, **fields: Any
) -> Any:
    """`payment.succeeded`: all of `amount` captured."""
    return make_payment_event(
        payment_id=payment,
        user_id=merchant,
        status=S.SUCCEEDED,
        amount=amount,
        amount_captured=amount,
        **fields,
    )


def authorised(
    make_payment_event: Any, payment: uuid.UUID, merchant: uuid.UUID, amount: int
) -> Any:
    """`payment.requires_capture`: a manual-capture payment holding all of `amount`."""
    return make_payment_event(
        payment_id=payment,
        user_id=merchant,
        status=S.REQUIRES_CAPTURE,
        amount=amount,
        capture_method="manual",
        amount_capturable=amount,
    )


def partly_refunded(
    make_payment_event: Any,
    payment: uuid.UUID,
    merchant: uuid.UUID,
    amount: int,
    refunded: int,
    **fields: Any,
) -> Any:
    """`payment.partially_refunded`: all of `amount` captured, `refunded` of it given back."""
    return make_payment_event(
        payment_id=payment,
        user_id=merchant,
        status=S.PARTIALLY_REFUNDED,
        amount=amount,
        amount_captured=amount,
        amount_refunded=refunded,
        **fields,
    )


# --- limits ------------------------------------------------------------------------------------


async def test_twenty_concurrent_reservations_against_a_daily_limit_accept_exactly_ten(
    svc: Any,
) -> None:
    user = uuid.uuid4()
    answers = await asyncio.gather(*(reserve(svc, user, 1_000) for _ in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 10 + [422] * 10, [r.text for r in answers]
    refused = [r for r in answers if r.status_code == 422]
    assert all(r.headers["content-type"].startswith(PROBLEM) for r in refused)
    assert {r.json()["code"] for r in refused} == {"limit_exceeded"}
    assert {r.json()["limit"] for r in refused} == {"daily"}
    rows = await svc.sql(
        "SELECT reserved FROM limit_counters WHERE user_id = :u AND period = 'day'", u=user
    )
    assert rows == [(10_000,)]


async def test_a_reservation_is_idempotent_by_reference(svc: Any) -> None:
    user, ref = uuid.uuid4(), uuid.uuid4()
    first = await reserve(svc, user, 4_000, ref=ref)
    again = await reserve(svc, user, 4_000, ref=ref)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await reserve(svc, user, 4_500, ref=ref)
    assert other.status_code == 409 and other.json()["code"] == "reservation_conflict"
    rows = await svc.sql(
        "SELECT reserved FROM limit_counters WHERE user_id = :u AND period = 'day'", u=user
    )
    assert rows == [(4_000,)]


async def test_an_amount_over_the_per_transaction_limit_is_refused(svc: Any) -> None:
    r = await reserve(svc, uuid.uuid4(), 5_001)
    assert r.status_code == 422
    assert (r.json()["code"], r.json()["limit"], r.json()["maximum"]) == (
        "limit_exceeded",
        "per_transaction",
        5_000,
    )


async def test_over_the_monthly_limit_nothing_stays_reserved_not_even_the_day(svc: Any) -> None:
    user = uuid.uuid4()
    assert (await reserve(svc, user, 5_000, currency="chf")).status_code == 201
    ref = uuid.uuid4()
    over = await reserve(svc, user, 2_000, currency="chf", ref=ref)
    assert over.status_code == 422, over.text
    assert (over.json()["limit"], over.json()["maximum"], over.json()["remaining"]) == (
        "monthly",
        6_000,
        1_000,
    )
    assert (await reserve(svc, user, 1_000, currency="chf")).status_code == 201
    rows = await svc.sql(
        "SELECT period, reserved FROM limit_counters WHERE user_id = :u ORDER BY period", u=user
    )
    assert [tuple(r) for r in rows] == [("day", 6_000), ("month", 6_000)]
    refused = await svc.sql("SELECT 1 FROM limit_reservations WHERE reference_id = :r", r=ref)
    assert refused == []


async def test_reservations_need_a_service_token(svc: Any) -> None:
    r = await svc.http.post(
        RESERVATIONS,
        json={
            "reference_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()),
            "amount": 1,
            "currency": "usd",
        },
        headers=svc.auth(uuid.uuid4()),
    )
    assert r.status_code == 401 and r.json()["code"] == "service_token_invalid"


async def test_a_failed_payment_releases_its_reservation(svc: Any, make_payment_event: Any) -> None:
    user, order = uuid.uuid4(), uuid.uuid4()
    assert (await reserve(svc, user, 5_000, ref=order)).status_code == 201
    assert (await reserve(svc, user, 5_000)).status_code == 201
    assert (await reserve(svc, user, 1)).status_code == 422  # the day is full
    failed = make_payment_event(
        payment_id=uuid.uuid4(),
        order_id=order,
        user_id=user,
        status=S.FAILED,
        amount=5_000,
        currency="eur",
    )
    await svc.publish(failed)
    await svc.applied(failed)
    rows = await svc.sql("SELECT status FROM limit_reservations WHERE reference_id = :r", r=order)
    assert rows == [("released",)]
    assert (await reserve(svc, user, 5_000)).status_code == 201


async def test_a_cancelled_order_releases_its_reservation(svc: Any) -> None:
    user, order = uuid.uuid4(), uuid.uuid4()
    assert (await reserve(svc, user, 5_000, ref=order)).status_code == 201
    envelope = new_event(
        OrderCancelled(order_id=order, user_id=user, reason="payment_timeout"),
        producer="order-service",
        aggregate_id=str(order),
    )
    await svc.publish(envelope, topic=ORDER_EVENT)
    await svc.applied(envelope)
    rows = await svc.sql(
        "SELECT reserved FROM limit_counters WHERE user_id = :u AND period = 'day'", u=user
    )
    assert rows == [(0,)]


async def test_a_partial_capture_keeps_only_what_was_captured(
    svc: Any, make_payment_event: Any
) -> None:
    user, payment = uuid.uuid4(), uuid.uuid4()
    assert (await reserve(svc, user, 5_000, ref=payment)).status_code == 201
    captured = make_payment_event(
        payment_id=payment,
        user_id=user,
        status=S.SUCCEEDED,
        amount=5_000,
        currency="eur",
        capture_method="manual",
        amount_captured=3_000,
    )
    await svc.publish(captured)
    await svc.applied(captured)
    rows = await svc.sql(
        "SELECT r.status, r.amount, c.reserved FROM limit_reservations r JOIN limit_counters c "
        "ON c.user_id = r.user_id AND c.period = 'day' WHERE r.reference_id = :p",
        p=payment,
    )
    assert rows == [("consumed", 3_000, 3_000)]


async def test_limits_from_config_changed_apply_without_restart(svc: Any) -> None:
    user, vip = uuid.uuid4(), uuid.uuid4()
    assert (await reserve(svc, user, 20_000, currency="gbp")).status_code == 201
    change = new_event(
        ConfigChanged(
            key="limits",
            config_version=1,
            value={
                "defaults": [{"currency": "gbp", "per_transaction": 10_000}],
                "overrides": {str(vip): [{"currency": "gbp", "per_transaction": 50_000}]},
            },
        ),
        producer="admin-service",
        aggregate_id="limits",
    )
    await svc.publish(change, topic=CONFIG_CHANGED)
    await svc.applied(change)
    r = await reserve(svc, user, 20_000, currency="gbp")
    assert r.status_code == 422 and r.json()["limit"] == "per_transaction"
    assert (await reserve(svc, vip, 20_000, currency="gbp")).status_code == 201


async def test_a_reservation_no_order_or_payment_ever_named_is_released(
    svc: Any, make_payment_event: Any
) -> None:
    from transaction_service.workers.reservations import sweep_once

    user, orphan, paid_order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert (await reserve(svc, user, 3_000, ref=orphan)).status_code == 201
    assert (await reserve(svc, user, 2_000, ref=paid_order)).status_code == 201
    seen = make_payment_event(
        payment_id=uuid.uuid4(),
        order_id=paid_order,
        user_id=user,
        status=S.PROCESSING,
        amount=2_000,
        currency="eur",
    )
    await svc.publish(seen)
    await svc.applied(seen)
    # Both an hour and a second old: only the one no event ever named goes.
    await svc.sql(
        "UPDATE limit_reservations SET created_at = now() - interval '2 hours' "
        "WHERE reference_id IN (:a, :b) RETURNING 1",
        a=orphan,
        b=paid_order,
    )
    await sweep_once(svc.app.state.sessionmaker, svc.settings)
    rows = await svc.sql(
        "SELECT reference_id, status FROM limit_reservations WHERE user_id = :u", u=user
    )
    assert dict(rows) == {orphan: "released", paid_order: "active"}
    counter = await svc.sql(
        "SELECT reserved FROM limit_counters WHERE user_id = :u AND period = 'day'", u=user
    )
    assert counter == [(2_000,)]


# --- history, balance, analytics ----------------------------------------------------------------


async def test_history_shows_a_captured_payment_with_its_fee_and_hides_it_from_others(
    svc: Any, make_payment_event: Any
) -> None:
    merchant, payment = uuid.uuid4(), uuid.uuid4()
    order = uuid.uuid4()
    event = captured(make_payment_event, payment, merchant, 10_000, order_id=order)
    await svc.publish(event)
    await svc.applied(event)

    r = await svc.http.get(f"/transactions/{payment}", headers=svc.auth(merchant))
    assert r.status_code == 200, r.text
    tx = r.json()
    # 2.9 % + 0.30 of 100.00 = 3.20
    assert (tx["status"], tx["amount_captured"], tx["fee"], tx["net"], tx["order_id"]) == (
        "succeeded",
        10_000,
        320,
        9_680,
        str(order),
    )
    lines = {(e["account"].split(":")[0], e["debit"], e["credit"]) for e in tx["entries"]}
    assert lines == {
        ("provider_clearing", 10_000, 0),
        ("merchant_available", 0, 9_680),
        ("platform_fees", 0, 320),
    }

    stranger = await svc.http.get(f"/transactions/{payment}", headers=svc.auth(uuid.uuid4()))
    assert stranger.status_code == 404 and stranger.json()["code"] == "transaction_not_found"
    admin = await svc.http.get(f"/transactions/{payment}", headers=svc.auth(uuid.uuid4(), "admin"))
    assert admin.status_code == 200
    garbage = await svc.http.get("/transactions/not-a-uuid", headers=svc.auth(merchant))
    assert garbage.status_code == 404


async def test_a_cached_page_is_hit_on_the_second_read_and_never_stale(
    svc: Any, make_payment_event: Any
) -> None:
    merchant = uuid.uuid4()
    first = captured(make_payment_event, uuid.uuid4(), merchant, 1_000)
    await svc.publish(first)
    await svc.applied(first)

    hits = svc.cache_count("hit")
    page1 = await svc.http.get("/transactions", headers=svc.auth(merchant))
    page2 = await svc.http.get("/transactions", headers=svc.auth(merchant))
    assert page1.status_code == page2.status_code == 200
    assert page2.json() == page1.json() and len(page1.json()["items"]) == 1
    assert svc.cache_count("hit") == hits + 1

    # A new payment and a refund of the first: the very next read shows both.
    second_id = uuid.uuid4()
    second = captured(make_payment_event, second_id, merchant, 2_000)
    refund = partly_refunded(
        make_payment_event, uuid.UUID(first.payload["payment_id"]), merchant, 1_000, 400
    )
    await svc.publish_all([second, refund])
    page3 = (await svc.http.get("/transactions", headers=svc.auth(merchant))).json()
    assert [i["id"] for i in page3["items"]] == [str(second_id), first.payload["payment_id"]]
    assert page3["items"][1]["status"] == "partially_refunded"
    assert page3["items"][1]["amount_refunded"] == 400

    balance = (await svc.http.get("/balance", headers=svc.auth(merchant))).json()
    # 1000 - 59 fee - 400 refunded + 2000 - 88 fee
    assert balance == {"items": [{"currency": "usd", "available": 2_453, "pending": 0}]}


async def test_refund_events_debit_the_merchant_once_each(
    svc: Any, make_payment_event: Any
) -> None:
    merchant, payment = uuid.uuid4(), uuid.uuid4()

    def refund(refund_id: uuid.UUID, status: RefundStatus, amount: int) -> Any:
        payload = RefundEvent(
            refund_id=refund_id,
            payment_id=payment,
            user_id=merchant,
            status=status,
            amount=amount,
            currency="sek",
            provider="stripe",
        )
        return new_event(payload, producer="payment-service", aggregate_id=str(payment))

    first, second = uuid.uuid4(), uuid.uuid4()
    again = refund(second, RefundStatus.SUCCEEDED, 2_000)
    events = [
        # The first refund overtakes the capture; the second is announced twice.
        refund(first, RefundStatus.SUCCEEDED, 1_000),
        captured(make_payment_event, payment, merchant, 10_000, currency="sek"),
        refund(second, RefundStatus.PENDING, 2_000),
        again,
        again.model_copy(update={"event_id": uuid.uuid4()}),
        refund(uuid.uuid4(), RefundStatus.FAILED, 5_000),
    ]
    await svc.publish_all(events)
    tx = (await svc.http.get(f"/transactions/{payment}", headers=svc.auth(merchant))).json()
    assert (tx["status"], tx["amount_refunded"], tx["net"]) == ("partially_refunded", 3_000, 6_680)
    balance = (await svc.http.get("/balance", headers=svc.auth(merchant))).json()
    assert balance == {"items": [{"currency": "sek", "available": 6_680, "pending": 0}]}


async def test_history_filters_and_pages_with_a_cursor(svc: Any, make_payment_event: Any) -> None:
    merchant = uuid.uuid4()
    events = [
        captured(
            make_payment_event, uuid.uuid4(), merchant, 100 + i, currency="usd" if i % 2 else "eur"
        )
        for i in range(5)
    ]
    await svc.publish_all(events)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await svc.http.get("/transactions", params=params, headers=svc.auth(merchant))
        ).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(e.payload["payment_id"] for e in events)
    assert len(seen) == 5
    eur = (
        await svc.http.get("/transactions", params={"currency": "eur"}, headers=svc.auth(merchant))
    ).json()
    assert len(eur["items"]) == 3
    failed = (
        await svc.http.get("/transactions", params={"status": "failed"}, headers=svc.auth(merchant))
    ).json()
    assert failed["items"] == []
    bad = await svc.http.get("/transactions", params={"cursor": "nope"}, headers=svc.auth(merchant))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


async def test_authorisation_is_pending_until_captured_and_a_void_releases_it(
    svc: Any, make_payment_event: Any
) -> None:
    merchant, held, voided = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        authorised(make_payment_event, held, merchant, 3_000),
        authorised(make_payment_event, voided, merchant, 1_000),
        make_payment_event(
            payment_id=voided,
            user_id=merchant,
            status=S.CANCELLED,
            amount=1_000,
            capture_method="manual",
        ),
    ]
    await svc.publish_all(events)
    balance = (await svc.http.get("/balance", headers=svc.auth(merchant))).json()
    assert balance == {"items": [{"currency": "usd", "available": 0, "pending": 3_000}]}


async def test_summary_counts_volume_fees_and_refunds_per_day(
    svc: Any, make_payment_event: Any
) -> None:
    merchant, payment = uuid.uuid4(), uuid.uuid4()
    events = [
        captured(make_payment_event, payment, merchant, 10_000, currency="chf"),
        partly_refunded(make_payment_event, payment, merchant, 10_000, 2_500, currency="chf"),
    ]
    await svc.publish_all(events)
    r = await svc.http.get(
        "/transactions/summary", params={"period": "month"}, headers=svc.auth(merchant)
    )
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert (item["currency"], item["count"], item["volume"], item["fees"], item["refunds"]) == (
        "chf",
        1,
        10_000,
        320,
        2_500,
    )
    bad = await svc.http.get(
        "/transactions/summary", params={"period": "year"}, headers=svc.auth(merchant)
    )
    assert bad.status_code == 422


async def test_fees_from_config_changed_apply_at_the_next_capture(
    svc: Any, make_payment_event: Any
) -> None:
    change = new_event(
        ConfigChanged(
            key="fees",
            config_version=1,
            value={
                "rules": [
                    {"provider": None, "currency": None, "basis_points": 290, "fixed": 30},
                    {"provider": "paypal", "currency": None, "basis_points": 500, "fixed": 0},
                ],
                "refund_returns_fee": False,
            },
        ),
        producer="admin-service",
        aggregate_id="fees",
    )
    await svc.publish(change, topic=CONFIG_CHANGED)
    await svc.applied(change)
    merchant, payment = uuid.uuid4(), uuid.uuid4()
    event = captured(make_payment_event, payment, merchant, 10_000, provider="paypal")
    await svc.publish(event)
    await svc.applied(event)
    tx = (await svc.http.get(f"/transactions/{payment}", headers=svc.auth(merchant))).json()
    assert tx["fee"] == 500
    view = await svc.http.get("/admin/ledger/config", headers=svc.auth(uuid.uuid4(), "admin"))
    assert view.status_code == 200, view.text
    fees = next(i for i in view.json()["items"] if i["key"] == "fees")
    assert fees["config_version"] >= 1 and fees["value"]["rules"][1]["provider"] == "paypal"
    denied = await svc.http.get("/admin/ledger/config", headers=svc.auth(merchant))
    assert denied.status_code == 403


async def test_trial_balance_is_equal_per_currency_and_admin_only(svc: Any) -> None:
    r = await svc.http.get("/admin/ledger/trial-balance", headers=svc.auth(uuid.uuid4(), "admin"))
    assert r.status_code == 200
    items = r.json()["items"]
    assert items and all(i["debits"] == i["credits"] > 0 for i in items)
    denied = await svc.http.get("/admin/ledger/trial-balance", headers=svc.auth(uuid.uuid4()))
    assert denied.status_code == 403


async def test_an_event_that_does_not_parse_is_dead_lettered_not_posted(
    svc: Any, make_payment_event: Any
) -> None:
    good = make_payment_event(
        payment_id=uuid.uuid4(), user_id=uuid.uuid4(), status=S.SUCCEEDED, amount=10
    )
    bad = good.model_copy(
        update={"event_id": uuid.uuid4(), "payload": {**good.payload, "amount": "lots"}}
    )
    await svc.publish(bad)
    await wait_for(
        lambda: svc.sql(
            "SELECT 1 FROM inbox WHERE event_id = :e AND outcome = 'dead_lettered'", e=bad.event_id
        ),
        timeout=30,
    )


async def test_analytics_count_attempts_success_rate_volume_and_refunds_per_provider(
    svc: Any, make_payment_event: Any
) -> None:
    merchant = uuid.uuid4()
    paid, declined, refunded = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        captured(make_payment_event, paid, merchant, 4_000, currency="huf"),
        make_payment_event(
            payment_id=declined, user_id=merchant, status=S.FAILED, amount=900, currency="huf"
        ),
        captured(make_payment_event, refunded, merchant, 6_000, currency="huf", provider="paypal"),
        partly_refunded(
            make_payment_event, refunded, merchant, 6_000, 1_000, currency="huf", provider="paypal"
        ),
    ]
    await svc.publish_all(events)

    r = await svc.http.get(
        "/internal/analytics", params={"currency": "huf"}, headers=svc.service_auth("admin-service")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == "day"
    by_provider = {i["provider"]: i for i in body["items"]}
    assert set(by_provider) == {"stripe", "paypal"}
    stripe, paypal = by_provider["stripe"], by_provider["paypal"]
    assert (stripe["count"], stripe["succeeded"], stripe["failed"]) == (2, 1, 1)
    assert stripe["success_rate"] == 0.5
    assert (stripe["volume"], stripe["refunds"]) == (4_000, 0)
    assert (paypal["count"], paypal["succeeded"], paypal["success_rate"]) == (1, 1, 1.0)
    assert (paypal["volume"], paypal["refunds"], paypal["refund_count"]) == (6_000, 1_000, 1)
    assert stripe["fees"] > 0

    monthly = await svc.http.get(
        "/internal/analytics",
        params={"currency": "huf", "period": "month"},
        headers=svc.service_auth("admin-service"),
    )
    assert sum(i["count"] for i in monthly.json()["items"]) == 3
    assert all(i["period_start"].endswith("-01") for i in monthly.json()["items"])

    # a user's JWT is not a service token; a backwards window is a 422 with a stable code
    user = await svc.http.get("/internal/analytics", headers=svc.auth(merchant, "admin"))
    assert user.status_code == 401
    backwards = await svc.http.get(
        "/internal/analytics",
        params={"from": "2026-02-01", "to": "2026-01-01"},
        headers=svc.service_auth("admin-service"),
    )
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "analytics_window_invalid"
    for edge in ({"to": "0001-01-01"}, {"to": "9999-12-31"}, {"from": "0001-01-01"}):
        r = await svc.http.get(
            "/internal/analytics", params=edge, headers=svc.service_auth("admin-service")
        )
        assert r.status_code in (200, 422), (edge, r.text)
