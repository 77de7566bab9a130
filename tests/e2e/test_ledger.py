"""The ledger through the gateway: a paid order in the history within 2 s, cached and never stale, limits."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_support import Customer, Suite, paying_customer, sign_up

from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.e2e


def cache_hits(suite: Suite) -> float:
    """transaction-service's `paygate_history_cache_total{result="hit"}` (its own /metrics)."""
    text = httpx.get(suite.procs["transaction"].url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("paygate_history_cache_total{") and 'result="hit"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def paid_order(buyer: Customer, amount: int) -> dict[str, Any]:
    r = await buyer.order(amount=amount)
    assert r.status_code == 201, r.text
    order = r.json()
    assert await buyer.wait_status(order["id"], {"paid", "failed", "requires_action"}) == "paid"
    return dict(order)


async def history(buyer: Customer, **params: Any) -> dict[str, Any]:
    r = await buyer.http.get("/transactions", params=params, headers=buyer.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_paid_order_shows_in_the_history_within_two_seconds_cached_and_never_stale(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    order = await paid_order(buyer, 2_500)
    paid_at = time.monotonic()

    async def shows_order() -> Any:
        items = (await history(buyer))["items"]
        return [i for i in items if i["order_id"] == order["id"] and i["status"] == "succeeded"]

    [tx] = await wait_for(shows_order, timeout=2.0)
    assert time.monotonic() - paid_at < 2.0
    assert (tx["amount_captured"], tx["currency"]) == (2_500, "usd")
    assert tx["fee"] > 0 and tx["net"] == 2_500 - tx["fee"]

    # The second read of the same page comes from Redis.
    hits = cache_hits(suite)
    assert (await history(buyer))["items"] == (await history(buyer))["items"]
    assert cache_hits(suite) >= hits + 1

    balance = (await http.get("/balance", headers=buyer.headers)).json()
    assert balance["items"] == [{"currency": "usd", "available": tx["net"], "pending": 0}]

    # Someone else cannot see it, not even that it exists.
    stranger = await sign_up(http)
    r = await http.get(f"/transactions/{tx['id']}", headers=stranger.headers)
    assert r.status_code == 404 and r.json()["code"] == "transaction_not_found"
    assert (await history(stranger))["items"] == []

    # A new payment after the page was cached: the next reads show it (never the stale page).
    second = await paid_order(buyer, 700)

    async def shows_both() -> bool:
        ids = {i["order_id"] for i in (await history(buyer))["items"]}
        return ids == {order["id"], second["id"]}

    await wait_for(shows_both, timeout=2.0)

    r = await http.get(f"/transactions/{tx['id']}", headers=buyer.headers)
    assert r.status_code == 200
    assert {e["account"].split(":")[0] for e in r.json()["entries"]} == {
        "provider_clearing",
        "merchant_available",
        "platform_fees",
    }


async def test_twenty_concurrent_orders_against_a_daily_limit_accept_exactly_ten(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    answers = await asyncio.gather(*(buyer.order(amount=1_000, currency="eur") for _ in range(20)))
    assert sorted(r.status_code for r in answers) == [201] * 10 + [422] * 10, [
        r.text for r in answers if r.status_code not in (201, 422)
    ]
    codes = {r.json()["code"] for r in answers if r.status_code == 422}
    assert codes == {"limit_exceeded"}
    listed = (await http.get("/orders", params={"limit": 100}, headers=buyer.headers)).json()
    assert len(listed["items"]) == 10


async def test_a_failed_payment_gives_its_limit_back(suite: Suite, http: httpx.AsyncClient) -> None:
    buyer = await sign_up(http)
    await buyer.save_card("pm_card_chargeCustomerFail")
    r = await buyer.order(amount=10_000, currency="eur")  # the whole eur day
    assert r.status_code == 201, r.text
    refused = await buyer.order(amount=100, currency="eur")  # above the minimum charge
    assert refused.status_code == 422 and refused.json()["code"] == "limit_exceeded"
    assert await buyer.wait_status(r.json()["id"], {"paid", "failed"}) == "failed"

    async def accepted_again() -> bool:
        return (await buyer.order(amount=10_000, currency="eur")).status_code == 201

    await wait_for(accepted_again, timeout=10)


async def test_a_direct_payment_reserves_against_the_same_limits(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    card = await buyer.save_card("pm_card_visa")

    async def pay(amount: int) -> httpx.Response:
        return await http.post(
            "/payments",
            json={"amount": amount, "currency": "eur", "payment_method_id": card["id"]},
            headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )

    first = await pay(6_000)
    assert first.status_code in (201, 202), first.text
    over = await pay(6_000)  # 120.00 in one eur day against a daily limit of 100.00
    assert over.status_code == 422 and over.json()["code"] == "limit_exceeded", over.text
    order_over = await buyer.order(amount=5_000, currency="eur")  # orders count too
    assert order_over.status_code == 422 and order_over.json()["code"] == "limit_exceeded"
    assert (await pay(4_000)).status_code in (201, 202)  # exactly up to the limit


async def test_the_trial_balance_is_equal_per_currency(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    from e2e_support import ADMIN_EMAIL, ADMIN_PASSWORD, sign_in

    admin = await sign_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = await http.get("/admin/ledger/trial-balance", headers=admin.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and all(i["debits"] == i["credits"] for i in items)
    assert re.fullmatch(r"[a-z]{3}", items[0]["currency"])
