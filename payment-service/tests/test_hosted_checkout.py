"""The hosted checkout against localstripe: a page-bound payment, paid once, 3-D Secure finished, CSP."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from payment_tests_support import LiveServer, Stripe, access_token
from sqlalchemy import func, select, update

from paygate_common.auth import SigningKey
from paygate_devstack.events_testing import wait_for
from payment_service.store.tables import outbox, payments
from payment_service.web import (
    TOKEN_HEADER,
    PageTokenInvalid,
    check_page_token,
    issue_page_token,
)

RETURN_URL = "https://shop.example.com/orders/42?ref=abc"


class Shop:
    """A merchant's backend (JWT) and a customer's browser (no JWT) on one payment-service."""

    def __init__(self, server: LiveServer, signing_key: SigningKey) -> None:
        self.url = server.url
        self.auth = {"Authorization": f"Bearer {access_token(signing_key, uuid.uuid4())}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    async def checkout(self, amount: int = 2500, **extra: Any) -> dict[str, Any]:
        body = {
            "amount": amount,
            "currency": "usd",
            "checkout": True,
            "return_url": RETURN_URL,
            "description": "Two concert tickets",
            **extra,
        }
        r = await self.request("POST", "/payments", json=body, headers=self.auth)
        assert r.status_code == 202, r.text
        return dict(r.json())

    async def payment(self, payment_id: str) -> dict[str, Any]:
        r = await self.request("GET", f"/payments/{payment_id}", headers=self.auth)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def page_token(self, payment_id: str) -> str:
        """What the page embeds for its own calls (data-token)."""
        r = await self.request("GET", f"/checkout/{payment_id}")
        assert r.status_code == 200, r.text
        marker = 'data-token="'
        start = r.text.index(marker) + len(marker)
        return r.text[start : r.text.index('"', start)]

    async def page_call(
        self, payment_id: str, path: str, token: str | None, body: Any = None
    ) -> httpx.Response:
        headers = {TOKEN_HEADER: token} if token else {}
        method = "GET" if body is None else "POST"
        return await self.request(
            method, f"/checkout/{payment_id}{path}", json=body, headers=headers
        )

    async def state_until(self, payment_id: str, token: str, check: Any) -> dict[str, Any]:
        async def poll() -> dict[str, Any] | None:
            r = await self.page_call(payment_id, "/state", token)
            assert r.status_code == 200, r.text
            return r.json() if check(r.json()) else None

        return dict(await wait_for(poll, timeout=25))


@pytest.fixture
def shop(payment_service: LiveServer, signing_key: SigningKey) -> Shop:
    return Shop(payment_service, signing_key)


async def test_a_checkout_payment_waits_for_the_customer_with_the_hosted_page_as_next_action(
    shop: Shop, stripe_api: Stripe, db_sessionmaker: Any
) -> None:
    created = await shop.checkout()
    assert created["status"] == "requires_action" and created["checkout"] is True
    assert created["next_action"] == {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": f"{shop.url}/checkout/{created['id']}",
            "return_url": RETURN_URL,
        },
    }
    # A payment created after it is charged: the executor has run past the checkout one,
    # which it must leave alone (nothing to charge until the customer brings a card).
    other = await shop.request(
        "POST",
        "/payments",
        json={"amount": 700, "currency": "usd", "payment_method": "pm_card_visa"},
        headers=shop.auth,
    )
    assert other.status_code == 202, other.text

    async def charged() -> bool:
        return (await shop.payment(other.json()["id"]))["status"] == "succeeded"

    await wait_for(charged, timeout=25)
    waiting = await shop.payment(created["id"])
    assert waiting["status"] == "requires_action" and waiting["attempts"] == []
    assert await stripe_api.intents_for(uuid.UUID(created["id"])) == []
    # Consumers were told it waits for the customer, with the page to send them to.
    async with db_sessionmaker() as session:
        rows = (
            await session.execute(
                select(outbox.c.event_type).where(
                    outbox.c.key == created["id"], outbox.c.topic == "payment.event"
                )
            )
        ).all()
    assert [r.event_type for r in rows] == ["payment.requires_action"]


async def test_a_checkout_needs_a_return_url_and_takes_no_method_from_the_merchant(
    shop: Shop,
) -> None:
    for extra in ({"return_url": None}, {"payment_method": "pm_card_visa"}):
        body = {"amount": 1000, "currency": "usd", "checkout": True, "return_url": RETURN_URL}
        r = await shop.request("POST", "/payments", json={**body, **extra}, headers=shop.auth)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_page_shows_amount_and_description_under_a_strict_csp(shop: Shop) -> None:
    created = await shop.checkout(amount=123456)
    r = await shop.request("GET", f"/checkout/{created['id']}")
    assert r.status_code == 200
    assert "1234.56 USD" in r.text and "Two concert tickets" in r.text
    assert "shop.example.com" in r.text
    csp = r.headers["content-security-policy"]
    stripe_origin = shop_stripe_origin(r.text)
    assert f"script-src 'self' {stripe_origin};" in csp
    assert f"connect-src 'self' {stripe_origin};" in csp
    assert "default-src 'none'" in csp and "base-uri 'none'" in csp
    # Framed only by the merchant it returns to (the button's overlay), never by anyone else.
    assert "frame-ancestors 'self' https://shop.example.com;" in csp
    assert r.headers["cache-control"] == "no-store"
    # No script but ours and Stripe.js; no inline script.
    assert f'<script src="{stripe_origin}/js.stripe.com/v3/"></script>' in r.text
    assert "<script>" not in r.text


async def test_merchant_text_on_the_page_is_escaped(shop: Shop) -> None:
    created = await shop.checkout(description='<img src=x onerror="alert(1)">')
    r = await shop.request("GET", f"/checkout/{created['id']}")
    assert "<img src=x" not in r.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in r.text


def shop_stripe_origin(html: str) -> str:
    start = html.index('<script src="') + len('<script src="')
    return html[start : html.index("/js.stripe.com/v3/", start)]


async def test_a_payment_not_made_for_checkout_has_no_page(shop: Shop) -> None:
    r = await shop.request(
        "POST",
        "/payments",
        json={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa"},
        headers=shop.auth,
    )
    direct = r.json()["id"]
    for payment_id in (direct, str(uuid.uuid4())):
        page = await shop.request("GET", f"/checkout/{payment_id}")
        assert page.status_code == 404 and "does not exist" in page.text


async def test_the_page_calls_need_that_payments_page_token(shop: Shop) -> None:
    first, second = await shop.checkout(), await shop.checkout()
    token_of_second = await shop.page_token(second["id"])
    for token in (None, "garbage", "9999999999.forged", token_of_second):
        r = await shop.page_call(first["id"], "/pay", token, {"payment_method": "pm_card_visa"})
        assert r.status_code == 403, (token, r.text)
        assert r.json()["code"] == "checkout_token_invalid"
    assert (await shop.payment(first["id"]))["status"] == "requires_action"


def test_a_page_token_expires_and_is_bound_to_its_payment(settings_factory: Any) -> None:
    settings = settings_factory()
    payment_id = uuid.uuid4()
    token = issue_page_token(settings, payment_id, now=1_000_000)
    check_page_token(settings, payment_id, token, now=1_000_000 + 60)
    with pytest.raises(PageTokenInvalid):
        check_page_token(settings, payment_id, token, now=1_000_000 + 86_401)
    with pytest.raises(PageTokenInvalid):
        check_page_token(settings, uuid.uuid4(), token, now=1_000_000 + 60)
    # Its expiry cannot be pushed out without the secret.
    expires, signature = token.split(".")
    with pytest.raises(PageTokenInvalid):
        check_page_token(settings, payment_id, f"{int(expires) + 10**6}.{signature}", now=1e6)


async def test_the_page_offers_exactly_the_providers_enabled_now(
    shop: Shop, payment_service: LiveServer
) -> None:
    created = await shop.checkout()
    token = await shop.page_token(created["id"])
    page = await shop.request("GET", f"/checkout/{created['id']}")
    # All four enabled by default: the card form and both redirect providers' buttons.
    assert 'id="card-form"' in page.text
    assert 'data-provider="paypal"' in page.text and 'data-provider="sslcommerz"' in page.text

    # `payments.providers` changed live (as admin-service's config.changed would): stripe only.
    view = payment_service.app.state.provider_choice.view
    before, version = view.value, view.version
    assert view.apply({"enabled": ["stripe"], "default": "stripe"}, version + 1)
    try:
        page = await shop.request("GET", f"/checkout/{created['id']}")
        assert 'id="card-form"' in page.text and "data-provider" not in page.text
        for provider in ("paypal", "sslcommerz"):
            r = await shop.page_call(created["id"], "/pay", token, {"provider": provider})
            assert r.status_code == 422 and r.json()["code"] == "provider_not_available"
        assert (await shop.payment(created["id"]))["status"] == "requires_action"
    finally:
        assert view.apply(before.model_dump(), version + 2)


async def test_a_card_token_pays_once_and_a_replay_changes_nothing(
    shop: Shop, stripe_api: Stripe
) -> None:
    created = await shop.checkout()
    token = await shop.page_token(created["id"])
    paid = await shop.page_call(created["id"], "/pay", token, {"payment_method": "pm_card_visa"})
    assert paid.status_code == 202, paid.text
    replay = await shop.page_call(
        created["id"], "/pay", token, {"payment_method": "pm_card_chargeCustomerFail"}
    )
    assert replay.status_code == 409 and replay.json()["code"] == "checkout_closed"

    done = await shop.state_until(created["id"], token, lambda s: s["done"])
    assert done["status"] == "succeeded"
    assert done["complete_url"] == f"/checkout/{created['id']}/complete"
    intents = await stripe_api.intents_for(uuid.UUID(created["id"]))
    assert len(intents) == 1 and intents[0]["amount"] == 2500
    payment = await shop.payment(created["id"])
    assert payment["status"] == "succeeded" and payment["next_action"] is None

    # The page now lands on the result, which links back to the merchant with the outcome.
    page = await shop.request("GET", f"/checkout/{created['id']}", follow_redirects=True)
    assert page.url.path == f"/checkout/{created['id']}/complete"
    assert "Payment successful" in page.text
    assert f"{RETURN_URL}&amp;payment_id={created['id']}&amp;status=succeeded" in page.text


async def test_3d_secure_is_finished_with_the_intents_client_secret_and_then_applied(
    shop: Shop, stripe_api: Stripe, localstripe: Any
) -> None:
    created = await shop.checkout(capture_method="manual")
    token = await shop.page_token(created["id"])
    pm = await stripe_api.card_method("4000002500003155")
    r = await shop.page_call(created["id"], "/pay", token, {"payment_method": pm})
    assert r.status_code == 202, r.text

    state = await shop.state_until(created["id"], token, lambda s: s["action"] is not None)
    assert state["status"] == "requires_action" and not state["done"]
    assert state["action"]["type"] == "stripe_authentication"
    secret = state["action"]["client_secret"]
    # What Stripe.js does in the browser when the customer completes the challenge.
    intent_id = secret.split("_secret_")[0]
    async with httpx.AsyncClient(base_url=localstripe.api_base) as client:
        auth = await client.post(
            f"/v1/payment_intents/{intent_id}/_authenticate?success=true",
            json={"key": "pk_test_paygate_local", "client_secret": secret},
        )
        assert auth.status_code == 200, auth.text

    after = await shop.page_call(created["id"], "/authenticated", token, {})
    assert after.status_code == 200 and after.json()["status"] == "requires_capture"
    assert after.json()["done"] is True
    payment = await shop.payment(created["id"])
    assert payment["status"] == "requires_capture" and payment["amount_capturable"] == 2500
    # The secret was handed to the page only; paygate stored it nowhere.
    assert secret not in str(payment)


async def test_a_failed_3d_secure_ends_on_the_failure_page(
    shop: Shop, stripe_api: Stripe, localstripe: Any
) -> None:
    created = await shop.checkout()
    token = await shop.page_token(created["id"])
    pm = await stripe_api.card_method("4000002500003155")
    await shop.page_call(created["id"], "/pay", token, {"payment_method": pm})
    state = await shop.state_until(created["id"], token, lambda s: s["action"] is not None)
    secret = state["action"]["client_secret"]
    async with httpx.AsyncClient(base_url=localstripe.api_base) as client:
        await client.post(
            f"/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate?success=false",
            json={"key": "pk_test_paygate_local", "client_secret": secret},
        )
    after = await shop.page_call(created["id"], "/authenticated", token, {})
    assert after.json()["status"] == "failed" and after.json()["done"] is True
    page = await shop.request("GET", f"/checkout/{created['id']}/complete")
    assert "Payment failed" in page.text and "Nothing was charged" in page.text
    assert "status=failed" in page.text


async def test_an_unpaid_checkout_can_be_cancelled_and_then_refuses_payment(
    shop: Shop, db_sessionmaker: Any
) -> None:
    created = await shop.checkout()
    token = await shop.page_token(created["id"])
    r = await shop.request("POST", f"/payments/{created['id']}/cancel", headers=shop.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    late = await shop.page_call(created["id"], "/pay", token, {"payment_method": "pm_card_visa"})
    assert late.status_code == 409 and late.json()["code"] == "checkout_closed"
    async with db_sessionmaker() as session:
        row = (
            await session.execute(select(payments).where(payments.c.id == uuid.UUID(created["id"])))
        ).one()
    assert row.status == "cancelled" and row.payment_method_token is None


async def test_an_expired_checkout_says_so_and_refuses_payment(
    shop: Shop, db_sessionmaker: Any
) -> None:
    created = await shop.checkout()
    token = await shop.page_token(created["id"])
    async with db_sessionmaker() as session:
        await session.execute(
            update(payments)
            .where(payments.c.id == uuid.UUID(created["id"]))
            .values(created_at=func.now() - timedelta(days=2))
        )
        await session.commit()
    page = await shop.request("GET", f"/checkout/{created['id']}")
    assert "This checkout has expired" in page.text and 'id="card-form"' not in page.text
    late = await shop.page_call(created["id"], "/pay", token, {"payment_method": "pm_card_visa"})
    assert late.status_code == 409 and late.json()["code"] == "checkout_closed"
    assert (await shop.payment(created["id"]))["status"] == "requires_action"


async def test_the_button_script_is_served_versioned_from_paygate(shop: Shop) -> None:
    r = await shop.request("GET", "/checkout/js/v1/button.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert "window.PaygateCheckout" in r.text


async def test_paypal_chosen_on_the_page_sends_the_payer_to_paypal_and_back_to_the_result(
    shop: Shop, paypal: Any
) -> None:
    created = await shop.checkout(amount=4200)
    token = await shop.page_token(created["id"])
    chosen = await shop.page_call(created["id"], "/pay", token, {"provider": "paypal"})
    assert chosen.status_code == 202, chosen.text
    # The page polls its state until the executor has PayPal's approval link for it.
    state = await shop.state_until(
        created["id"], token, lambda s: (s["action"] or {}).get("type") == "redirect"
    )
    payment = await shop.payment(created["id"])
    assert payment["provider"] == "paypal" and payment["status"] == "requires_action"
    assert paypal.orders[payment["provider_reference"]]["intent"] == "CAPTURE"
    # The payer approves at PayPal and comes back through our return route to the result page.
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        landed = await browser.get(state["action"]["url"])
    assert landed.status_code == 200, landed.text
    assert str(landed.url).endswith(f"/checkout/{created['id']}/complete")
    assert "shop.example.com" in landed.text  # the way back to the merchant
    paid = await shop.payment(created["id"])
    assert (paid["status"], paid["amount_captured"]) == ("succeeded", 4200)
    assert len(paypal.orders[payment["provider_reference"]]["capture_ids"]) == 1
