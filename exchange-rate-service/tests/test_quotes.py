"""Locked FX quotes: priced with the margin, idempotent, owner-only, honoured until expires_at, redeemed once."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest

QUOTE = {"from": "usd", "to": "eur", "amount": 10_000}


def latest_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


@pytest.fixture
async def svc(start_rates_service: Any, feed: Any, make_clock: Any) -> Any:
    clock = make_clock()
    feed.publish(
        latest_weekday(clock.now.date()), {"USD": "1.1172", "JPY": "175.68", "IDR": "20275.17"}
    )
    async with start_rates_service(clock=clock, quote_ttl_seconds=600, quote_margin_bps=50) as svc:
        assert (await svc.refresh()).status_code == 200
        yield svc


async def test_quote_locks_the_mid_rate_less_the_margin(svc: Any) -> None:
    user = uuid.uuid4()
    r = await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(user))
    assert r.status_code == 201, r.text
    quote = r.json()
    assert r.headers["location"] == f"/fx/quotes/{quote['id']}"
    assert quote["mid_rate"] == "0.8950948801"  # 1 / 1.1172 = 0.89509488005…
    assert quote["rate"] == "0.8906194057"  # less 50 bps: times 0.995
    assert quote["converted_amount"] == 8906  # 100.00 usd -> 89.06194057 eur
    assert quote["status"] == "open" and quote["margin_bps"] == 50
    assert datetime.fromisoformat(quote["expires_at"]) == svc.clock.now + timedelta(seconds=600)

    r = await svc.http.get(f"/fx/quotes/{quote['id']}", headers=svc.auth(user))
    assert r.status_code == 200 and r.json()["rate"] == quote["rate"]
    r = await svc.http.get(f"/fx/quotes/{quote['id']}", headers=svc.auth(uuid.uuid4()))
    assert r.status_code == 404 and r.json()["code"] == "quote_not_found"
    r = await svc.http.get(f"/fx/quotes/{quote['id']}", headers=svc.auth(uuid.uuid4(), "admin"))
    assert r.status_code == 200
    r = await svc.http.get("/fx/quotes/not-a-uuid", headers=svc.auth(user))
    assert r.status_code == 404


async def test_idempotency_key_returns_the_same_quote(svc: Any) -> None:
    user = uuid.uuid4()
    headers = {**svc.auth(user), "Idempotency-Key": "quote-1"}
    first = await svc.http.post("/fx/quotes", json=QUOTE, headers=headers)
    again = await svc.http.post("/fx/quotes", json=QUOTE, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    other = await svc.http.post("/fx/quotes", json={**QUOTE, "amount": 1}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    rows = await svc.sql("SELECT count(*) AS n FROM fx_quotes WHERE user_id = :u", u=user)
    assert rows[0].n == 1


async def test_quote_is_honoured_before_expiry_and_refused_after(svc: Any) -> None:
    user = uuid.uuid4()
    first = (await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(user))).json()
    second = (await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(user))).json()

    svc.clock.advance(seconds=599)  # one second before expires_at
    r = await svc.http.post(
        f"/internal/fx/quotes/{first['id']}/redeem",
        json={"reference": "pay_1"},
        headers=svc.service_auth(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "redeemed" and r.json()["converted_amount"] == 8906

    # The same caller retrying with the same reference (its answer was lost) gets it back.
    r = await svc.http.post(
        f"/internal/fx/quotes/{first['id']}/redeem",
        json={"reference": "pay_1"},
        headers=svc.service_auth(),
    )
    assert r.status_code == 200
    # Anybody else, or without the reference: already spent.
    for body in ({"reference": "pay_2"}, None):
        r = await svc.http.post(
            f"/internal/fx/quotes/{first['id']}/redeem", json=body, headers=svc.service_auth()
        )
        assert r.status_code == 409 and r.json()["code"] == "quote_redeemed"

    svc.clock.advance(seconds=1)  # exactly expires_at: no longer honoured
    r = await svc.http.post(
        f"/internal/fx/quotes/{second['id']}/redeem", headers=svc.service_auth()
    )
    assert r.status_code == 410 and r.json()["code"] == "quote_expired"
    r = await svc.http.get(f"/fx/quotes/{second['id']}", headers=svc.auth(user))
    assert r.json()["status"] == "expired"
    [row] = await svc.sql("SELECT status FROM fx_quotes WHERE id = :id", id=uuid.UUID(second["id"]))
    assert row.status == "open"  # expiry is read from expires_at, never a redemption


async def test_redeem_needs_a_service_token_and_an_existing_quote(svc: Any) -> None:
    user = uuid.uuid4()
    quote = (await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(user))).json()
    r = await svc.http.post(f"/internal/fx/quotes/{quote['id']}/redeem", headers=svc.auth(user))
    assert r.status_code == 401 and r.json()["code"] == "service_token_invalid"
    r = await svc.http.post(
        f"/internal/fx/quotes/{uuid.uuid4()}/redeem", headers=svc.service_auth()
    )
    assert r.status_code == 404


async def test_concurrent_redemptions_spend_a_quote_once(svc: Any) -> None:
    import asyncio

    quote = (await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(uuid.uuid4()))).json()
    results = await asyncio.gather(
        *(
            svc.http.post(
                f"/internal/fx/quotes/{quote['id']}/redeem",
                json={"reference": f"pay_{i}"},
                headers=svc.service_auth(),
            )
            for i in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]


async def test_quotes_refuse_nonsense_and_stale_rates(svc: Any) -> None:
    user = uuid.uuid4()
    r = await svc.http.post(
        "/fx/quotes", json={"from": "usd", "to": "usd", "amount": 100}, headers=svc.auth(user)
    )
    assert r.status_code == 422 and r.json()["code"] == "same_currency"
    r = await svc.http.post(
        "/fx/quotes", json={"from": "idr", "to": "usd", "amount": 1}, headers=svc.auth(user)
    )
    assert r.status_code == 422 and r.json()["code"] == "amount_too_small"
    r = await svc.http.post(
        "/fx/quotes", json={"from": "usd", "to": "eur", "amount": 1.5}, headers=svc.auth(user)
    )
    assert r.status_code == 422
    svc.clock.advance(days=6)  # the feed's rates are now older than stale_after_seconds
    r = await svc.http.post("/fx/quotes", json=QUOTE, headers=svc.auth(user))
    assert r.status_code == 503 and r.json()["code"] == "rates_stale"
