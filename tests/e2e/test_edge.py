"""The edge, end to end: ambiguous requests stopped, names that cannot break email, clean logs,
and Schemathesis with every check over the gateway's merged spec."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from e2e_support import PASSWORD, SERVICES, Suite, paying_customer, sign_in, sign_up

from paygate_common.services import API_PREFIX
from paygate_common.services import SERVICES as REGISTRY
from paygate_devstack.events_testing import wait_for
from paygate_devstack.schemathesis_kit import fuzz_openapi

# Verified by the provider's signature, which a fuzzer cannot make (each service's own tests
# cover a forged one); the merchant's webhook routes (`/webhooks/settings`, the log) are fuzzed.
PROVIDER_CALLBACKS = tuple(f"{API_PREFIX}/webhooks/{p}" for p in ("stripe", "paypal", "sslcommerz"))


def served_by_this_suite(path: str) -> bool:
    """The gateway route (longest public prefix) of `path` goes to a service this suite runs:
    the gateway may still document a service another module started and stopped since."""
    owners = [
        (len(API_PREFIX + r.prefix), spec.name)
        for spec in REGISTRY
        for r in spec.routes
        if not r.web
        and (path == API_PREFIX + r.prefix or path.startswith(API_PREFIX + r.prefix + "/"))
    ]
    return bool(owners) and max(owners)[1] in SERVICES


pytestmark = pytest.mark.e2e

# gateway.proxy.new_request_id and paygate_common.logging.new_request_id: 32 lowercase hex
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
TEST_PANS = ("4242424242424242", "4000002500003155", "4000000000000341", "5555555555554444")


async def _raw(suite: Suite, head: str, body: str = "") -> tuple[int, bytes]:
    host, port = suite.procs["gateway"].url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"{head}Host: {host}\r\nConnection: close\r\n\r\n{body}".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    return int(data.split(b" ", 2)[1]), data


async def test_two_authorization_headers_never_reach_a_service(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    alice, bob = await sign_up(http), await sign_up(http)
    body = '{"amount": 1999, "currency": "usd"}'
    status, data = await _raw(
        suite,
        f"POST /api/v1/orders HTTP/1.1\r\nAuthorization: Bearer {alice.token}\r\n"
        f"Authorization: Bearer {bob.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n",
        body,
    )
    assert status == 400 and b'"code":"duplicate_header"' in data
    for buyer in (alice, bob):
        listed = await http.get("/orders", headers=buyer.headers)
        assert listed.json()["items"] == []  # no order was created for either of them


async def test_a_utf16_declared_body_is_refused_at_the_edge_and_at_the_service(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await sign_up(http)
    headers = {**buyer.headers, "Content-Type": "application/json; charset=utf-16"}
    body = b'{"amount": 1999, "currency": "usd"}'
    via_gateway = await http.post("/orders", content=body, headers=headers)
    direct = httpx.post(f"{suite.procs['order'].url}/orders", content=body, headers=headers)
    assert via_gateway.status_code == direct.status_code == 415
    assert direct.headers["content-type"] == "application/problem+json"


async def test_a_name_with_cr_lf_is_refused_and_unicode_names_get_their_receipt(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    injected = await http.post(
        "/auth/signup",
        json={
            "email": "eve.crlf@example.com",
            "password": PASSWORD,
            "full_name": "Eve\r\nBcc: x@example.com",
        },
    )
    assert injected.status_code == 422, injected.text

    email = "zoe.unicode@example.com"
    name = "Zoë Łukasz 李小龍 🎉👩🏽‍💻"
    created = await http.post(
        "/auth/signup", json={"email": email, "password": PASSWORD, "full_name": name}
    )
    assert created.status_code == 201, created.text
    assert created.json()["full_name"] == name
    buyer = await sign_in(http, email, PASSWORD)
    await buyer.save_card("pm_card_visa")
    order = (await buyer.order(amount=1999)).json()
    assert await buyer.wait_status(order["id"], {"paid", "failed"}) == "paid"
    mail = await wait_for(
        lambda: [m for m in suite.stack.smtp.messages() if email in str(m["To"])], timeout=30
    )
    assert mail[0]["To"].addresses[0].display_name == name  # decoded back intact


def _log_records(suite: Suite) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for name, proc in suite.procs.items():
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append((name, json.loads(line)))
                except ValueError:
                    continue
    return records


async def test_request_ids_in_every_service_log_are_intact_and_no_pan_survives(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    # Traffic that carries request ids through every service, and PANs where logs may see them.
    buyer = await paying_customer(http)
    order = (await buyer.order(amount=1234)).json()
    await buyer.wait_status(order["id"], {"paid", "failed"})
    for pan in TEST_PANS:
        await http.post(
            "/users/me/payment-methods",
            json={"provider": "stripe", "token": pan},
            headers=buyer.headers,
        )
    records = _log_records(suite)
    ids = [(name, r["request_id"]) for name, r in records if r.get("request_id")]
    assert len({name for name, _ in ids}) >= 3, "too few services logged a request id"
    mangled = [(name, rid) for name, rid in ids if not REQUEST_ID.match(str(rid))]
    assert not mangled, mangled[:10]
    for proc in suite.procs.values():
        text = proc.log_path.read_text(errors="replace")
        for pan in TEST_PANS:
            assert pan not in text, f"{pan} in {proc.log_path}"


@pytest.mark.slow
@pytest.mark.timeout(900)  # the suite's start-up plus ~20 operations x 2 modes, with all checks
async def test_every_check_passes_over_the_gateways_merged_spec(
    suite: Suite, http: httpx.AsyncClient
) -> None:
    buyer = await paying_customer(http)
    gateway = suite.procs["gateway"].url

    def run() -> Any:
        return fuzz_openapi(
            gateway,
            spec_url=f"{gateway}/openapi.json",
            headers_for=lambda case: buyer.headers,
            max_examples=5,
            include=lambda op: op.path not in PROVIDER_CALLBACKS and served_by_this_suite(op.path),
        )

    report = await asyncio.to_thread(run)
    assert report.operations >= 15
    assert not report.failures, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
