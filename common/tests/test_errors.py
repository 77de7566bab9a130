"""Errors reach clients as RFC 9457 problem+json with stable codes, never as stack traces."""

import logging

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from paygate_common.errors import Conflict, RateLimited, install_error_handlers


class Charge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int
    currency: str


class DuplicateCharge(Conflict):
    code = "duplicate_charge"


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/charges")
    async def create(charge: Charge) -> dict[str, int]:
        return {"amount": charge.amount}

    @app.post("/duplicate")
    async def duplicate() -> None:
        raise DuplicateCharge("charge ch_1 already exists", charge_id="ch_1")

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited(retry_after=7)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    return app


@pytest.fixture
def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/charges", content=b'{"amount": 1', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "malformed_json"


async def test_wrong_type_and_unknown_field_are_422_with_locations(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/charges", json={"amount": "lots", "currency": "usd", "cvc": "123"})
    body = r.json()
    assert r.status_code == 422
    assert body["code"] == "validation_error"
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "amount") in locs
    assert ("body", "cvc") in locs
    # The rejected input is never echoed back: it could be a card number or a password.
    assert "123" not in r.text and "lots" not in r.text


async def test_domain_error_keeps_its_code_status_and_extras(client: httpx.AsyncClient) -> None:
    r = await client.post("/duplicate")
    assert r.status_code == 409
    assert r.json() == {
        "type": "https://paygate.dev/problems/duplicate_charge",
        "title": "Conflict",
        "status": 409,
        "code": "duplicate_charge",
        "detail": "charge ch_1 already exists",
        "instance": "/duplicate",
        "charge_id": "ch_1",
    }


async def test_rate_limited_carries_retry_after(client: httpx.AsyncClient) -> None:
    r = await client.get("/limited")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"


async def test_unknown_route_is_a_problem_not_html(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_unexpected_error_hides_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/boom")
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error"
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert any("unhandled error" in rec.getMessage() for rec in caplog.records)
