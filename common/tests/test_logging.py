"""Logs are masked and correlated: card numbers, tokens and passwords never reach a handler."""

import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from paygate_common.logging import (
    MaskingFilter,
    RequestIdFilter,
    RequestIdMiddleware,
    current_request_id,
    mask,
)


@pytest.mark.parametrize(
    ("raw", "leak"),
    [
        ("charging card 4242 4242 4242 4242", "4242 4242 4242 4242"),
        ("card=4000002500003155", "4000002500003155"),
        ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJzdWIiOiIxIn0"),
        ('{"password": "correct horse battery"}', "correct horse"),
        ("stripe key sk_live_51Habcdefghijklmnop", "51Habcdefghijklmnop"),
        ("webhook secret whsec_abcdefghijkl", "abcdefghijkl"),
    ],
)
def test_mask_removes_secrets(raw: str, leak: str) -> None:
    assert leak not in mask(raw)


def test_mask_keeps_last4_and_ordinary_numbers() -> None:
    assert "****4242" in mask("pan 4242424242424242")
    # Not a valid Luhn number: an order reference, not a card.
    assert "1234567890123456" in mask("order ref 1234567890123456")


def test_masking_filter_applies_to_args_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "declined %s", "4242424242424242", extra={"body": {"password": "pw=hunter22"}}
        )
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "4242424242424242" not in out
    assert "****4242" in out


async def test_request_id_is_kept_or_minted_and_visible_to_logs() -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.get("/")
    async def root() -> dict[str, str | None]:
        seen.append(current_request_id())
        return {"rid": current_request_id()}

    wrapped = RequestIdMiddleware(app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped), base_url="http://t"
    ) as c:
        kept = await c.get("/", headers={"X-Request-ID": "abc-123"})
        minted = await c.get("/")
        hostile = await c.get("/", headers={"X-Request-ID": "x\n{injected}"})
    assert kept.headers["x-request-id"] == "abc-123" == kept.json()["rid"]
    assert len(minted.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x\n{injected}"
    assert seen[0] == "abc-123"


def test_json_records_carry_service_and_request_id() -> None:
    from pythonjsonlogger.json import JsonFormatter

    from paygate_common.logging import request_id_var

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter("order-service"))
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter("%(levelname)s %(message)s %(service)s %(request_id)s"))
    logger = logging.getLogger("test.json")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("rid-9")
    try:
        logger.info("paid with 4242424242424242")
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["service"] == "order-service"
    assert record["request_id"] == "rid-9"
    assert "4242424242424242" not in record["message"]
