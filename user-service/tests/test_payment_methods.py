"""Saved payment methods against localstripe: attach, one default, declines, provider outages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from user_service.providers.stripe import StripeCards

PROBLEM = "application/problem+json"


@pytest.fixture
def tokenise(localstripe: Any) -> Callable[[str], Awaitable[str]]:
    """What Stripe.js does in a browser: card number in, `pm_...` out; never through our API."""

    async def create(number: str) -> str:
        async with httpx.AsyncClient(base_url=localstripe.api_base) as stripe_api:
            r = await stripe_api.post(
                "/v1/payment_methods",
                data={
                    "type": "card",
                    "card[number]": number,
                    "card[exp_month]": "7",
                    "card[exp_year]": "2031",
                    "card[cvc]": "123",
                },
                headers={"Authorization": f"Bearer {localstripe.api_key}"},
            )
            r.raise_for_status()
            return str(r.json()["id"])

    return create


@pytest.fixture
async def account(new_account: Callable[..., Awaitable[Any]]) -> Any:
    return await new_account()


async def save(client: httpx.AsyncClient, account: Any, token: str, **extra: Any) -> httpx.Response:
    return await client.post(
        "/users/me/payment-methods",
        json={"provider": "stripe", "token": token, **extra},
        headers=account.headers,
    )


async def test_first_card_is_saved_as_the_default(
    client: httpx.AsyncClient, account: Any, app: FastAPI
) -> None:
    r = await save(client, account, "pm_card_visa")
    assert r.status_code == 201, r.text
    method = r.json()
    assert set(method) == {
        "id",
        "provider",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "is_default",
        "created_at",
    }
    assert method["provider"] == "stripe"
    assert (method["brand"], method["last4"], method["is_default"]) == ("visa", "4242", True)
    assert 1 <= method["exp_month"] <= 12
    assert method["exp_year"] >= 2025

    listed = await client.get("/users/me/payment-methods", headers=account.headers)
    assert listed.json() == [method]

    async with app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT pm.provider_payment_method_id, u.stripe_customer_id"
                    " FROM payment_methods pm JOIN users u ON u.id = pm.user_id WHERE pm.id = :i"
                ),
                {"i": method["id"]},
            )
        ).one()
    # Stripe turned the test token into a real PaymentMethod attached to the user's customer.
    assert row.provider_payment_method_id.startswith("pm_")
    assert row.provider_payment_method_id != "pm_card_visa"
    assert row.stripe_customer_id.startswith("cus_")


async def test_make_default_moves_the_default_and_one_customer_serves_all_cards(
    client: httpx.AsyncClient,
    account: Any,
    app: FastAPI,
    localstripe: Any,
    tokenise: Callable[[str], Awaitable[str]],
) -> None:
    first = (await save(client, account, "pm_card_visa")).json()
    second = await save(client, account, await tokenise("5555555555554444"))
    assert second.status_code == 201, second.text
    assert second.json()["is_default"] is False
    # localstripe calls every card "visa"; the last4 and expiry prove we read the new card.
    assert second.json()["last4"] == "4444"
    assert (second.json()["exp_month"], second.json()["exp_year"]) == (7, 2031)
    third = await save(client, account, "pm_card_visa", make_default=True)
    assert third.json()["is_default"] is True

    listed = (await client.get("/users/me/payment-methods", headers=account.headers)).json()
    assert [m["id"] for m in listed] == [first["id"], second.json()["id"], third.json()["id"]]
    assert [m["is_default"] for m in listed] == [False, False, True]

    async with app.state.engine.connect() as conn:
        customers = (
            await conn.execute(
                text("SELECT stripe_customer_id FROM users WHERE id = :i"), {"i": account.id}
            )
        ).scalar_one()
    assert customers.startswith("cus_")
    async with httpx.AsyncClient(base_url=localstripe.api_base) as stripe_api:
        attached = await stripe_api.get(
            "/v1/payment_methods",
            params={"customer": customers, "type": "card"},
            headers={"Authorization": f"Bearer {localstripe.api_key}"},
        )
    assert len(attached.json()["data"]) == 3


async def test_the_database_refuses_a_second_default(
    client: httpx.AsyncClient, account: Any, app: FastAPI
) -> None:
    await save(client, account, "pm_card_visa")
    await save(client, account, "pm_card_visa")
    with pytest.raises(IntegrityError, match="uq_payment_methods_one_default"):
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text("UPDATE payment_methods SET is_default = true WHERE user_id = :u"),
                {"u": account.id},
            )


async def test_concurrent_make_default_saves_leave_exactly_one_default(
    client: httpx.AsyncClient, account: Any
) -> None:
    import asyncio

    results = await asyncio.gather(
        *(save(client, account, "pm_card_visa", make_default=True) for _ in range(3))
    )
    assert [r.status_code for r in results] == [201, 201, 201]
    listed = (await client.get("/users/me/payment-methods", headers=account.headers)).json()
    assert len(listed) == 3
    assert sum(m["is_default"] for m in listed) == 1


async def test_a_declined_card_is_402_card_declined(
    client: httpx.AsyncClient, account: Any
) -> None:
    # localstripe declines card 4000000000000002 when it is attached to a customer.
    r = await save(client, account, "pm_card_visa_chargeDeclined")
    assert r.status_code == 402, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["code"] == "card_declined"
    # localstripe sends no decline_code, so we fall back to Stripe's error code.
    assert problem["decline_code"] == "card_declined"
    listed = await client.get("/users/me/payment-methods", headers=account.headers)
    assert listed.json() == []


@pytest.mark.parametrize("token", ["pm_does_not_exist_123", "pm_card_nonsense"])
async def test_an_unknown_token_is_422_invalid_payment_method(
    client: httpx.AsyncClient, account: Any, token: str
) -> None:
    r = await save(client, account, token)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_payment_method"


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "paypal", "token": "pm_card_visa"},
        {"provider": "stripe", "token": "4242424242424242"},
        {"provider": "stripe", "token": "pm_card_visa", "number": "4242424242424242"},
        {"provider": "stripe", "token": "pm_card_visa", "make_default": "yes"},
    ],
    ids=["provider", "raw-card-number", "unknown-field", "wrong-type"],
)
async def test_bad_bodies_are_refused_before_stripe_is_called(
    client: httpx.AsyncClient, account: Any, body: dict[str, Any]
) -> None:
    r = await client.post("/users/me/payment-methods", json=body, headers=account.headers)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert "4242424242424242" not in r.text


@pytest.fixture
async def stripe_down(app: FastAPI) -> AsyncIterator[None]:
    real = app.state.stripe_cards
    broken = app.state.settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
    app.state.stripe_cards = StripeCards(broken)
    try:
        yield
    finally:
        await app.state.stripe_cards.aclose()
        app.state.stripe_cards = real


async def test_stripe_unreachable_is_503_provider_unavailable(
    client: httpx.AsyncClient, account: Any, stripe_down: None
) -> None:
    r = await save(client, account, "pm_card_visa")
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "provider_unavailable"


async def test_deleting_the_default_promotes_the_newest_other(
    client: httpx.AsyncClient, account: Any, tokenise: Callable[[str], Awaitable[str]]
) -> None:
    first = (await save(client, account, "pm_card_visa")).json()
    second = (await save(client, account, await tokenise("5555555555554444"))).json()
    third = (await save(client, account, await tokenise("5200828282828210"))).json()
    assert first["is_default"]
    r = await client.delete(f"/users/me/payment-methods/{first['id']}", headers=account.headers)
    assert r.status_code == 204
    listed = (await client.get("/users/me/payment-methods", headers=account.headers)).json()
    assert {m["id"]: m["is_default"] for m in listed} == {second["id"]: False, third["id"]: True}
    again = await client.delete(f"/users/me/payment-methods/{first['id']}", headers=account.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "payment_method_not_found"


async def test_saving_the_same_payment_method_twice_is_409(
    client: httpx.AsyncClient, account: Any, tokenise: Callable[[str], Awaitable[str]]
) -> None:
    token = await tokenise("5555555555554444")
    assert (await save(client, account, token)).status_code == 201
    again = await save(client, account, token)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "payment_method_exists"


async def test_one_user_cannot_see_or_delete_anothers_methods(
    client: httpx.AsyncClient, account: Any, new_account: Callable[..., Awaitable[Any]]
) -> None:
    mine = (await save(client, account, "pm_card_visa")).json()
    other = await new_account()
    assert (await client.get("/users/me/payment-methods", headers=other.headers)).json() == []
    r = await client.delete(f"/users/me/payment-methods/{mine['id']}", headers=other.headers)
    assert r.status_code == 404
    bad_id = await client.delete(
        f"/users/me/payment-methods/{uuid.uuid4()}", headers=account.headers
    )
    assert bad_id.status_code == 404


async def test_payment_methods_need_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/users/me/payment-methods")
    assert r.status_code == 401
    assert r.json()["code"] == "token_missing"
