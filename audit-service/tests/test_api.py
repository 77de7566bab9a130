"""The audit API: admin only, filters and cursors, streamed exports, the summary report."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit_service.domain.chain import record_hash
from audit_service.domain.records import draft_record
from audit_service.store.records import append_records
from paygate_common.db import unit_of_work
from paygate_common.events import EventEnvelope, new_event
from paygate_common.events.models import AuditAction, AuditOutcome

ROUTES = [
    "/admin/audit/events",
    f"/admin/audit/events/{uuid.uuid4()}",
    "/admin/audit/entities/order/123",
    "/admin/audit/verify",
    "/admin/audit/export",
    "/admin/audit/export?format=csv",
    "/admin/audit/summary",
    "/admin/audit/checkpoints/latest",
    "/admin/audit/archives",
]


def audit_event(action: str, **fields: Any) -> EventEnvelope:
    payload = AuditAction(action=action, **{"entity_type": "user", **fields})
    return new_event(payload, producer="user-service", aggregate_id=payload.entity_id or "x")


async def seed(svc: Any, envelopes: list[EventEnvelope]) -> list[dict[str, Any]]:
    async with unit_of_work(svc.app.state.sessionmaker) as session:
        return await append_records(session, [draft_record(e) for e in envelopes])


@pytest.fixture
async def svc(start_audit_service: Any) -> Any:
    async with start_audit_service(consumer_enabled=False) as service:
        yield service


async def test_a_customer_gets_403_and_an_admin_200_on_every_route(svc: Any) -> None:
    await seed(svc, [audit_event("auth.signed_in", entity_id="u1")])
    await svc.get("/admin/audit/verify")  # nothing to do with the outcome: warm the app
    from audit_service.workers.checkpoints import checkpoint_once

    await checkpoint_once(svc.app.state.sessionmaker, svc.settings)
    record_id = (await svc.get("/admin/audit/events")).json()["items"][0]["id"]
    for route in [*ROUTES, f"/admin/audit/events/{record_id}"]:
        customer = await svc.http.get(route, headers=svc.auth("customer"))
        assert customer.status_code == 403, route
        assert customer.json()["code"] == "admin_required", route
        anonymous = await svc.http.get(route)
        assert anonymous.status_code == 401, route
        admin = await svc.http.get(route, headers=svc.auth("admin"))
        expected = 404 if route == ROUTES[1] else 200
        assert admin.status_code == expected, (route, admin.text)


async def test_filters_and_cursor_pages(svc: Any) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    envelopes = [
        audit_event("auth.signed_in", actor_id=alice, entity_id=str(alice)),
        audit_event("auth.signin_failed", entity_id=str(bob), outcome=AuditOutcome.FAILED),
        *[
            audit_event(
                "payment.refund_requested",
                actor_id=alice,
                entity_type="payment",
                entity_id=f"pay_{i}",
            )
            for i in range(5)
        ],
    ]
    await seed(svc, envelopes)

    mine = (await svc.get("/admin/audit/events", actor=str(alice))).json()
    assert len(mine["items"]) == 6
    assert mine["next_cursor"] is None
    failed = (await svc.get("/admin/audit/events", action="auth.signin_failed")).json()["items"]
    assert [i["entity_id"] for i in failed] == [str(bob)]
    family = (await svc.get("/admin/audit/events", action="auth.*")).json()["items"]
    assert {i["action"] for i in family} == {"auth.signed_in", "auth.signin_failed"}
    one = (await svc.get("/admin/audit/events", entity_type="payment", entity_id="pay_3")).json()[
        "items"
    ]
    assert [i["entity_id"] for i in one] == ["pay_3"]

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await svc.get("/admin/audit/events", **params)).json()
        seen += [i["seq"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(7, 0, -1))

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await svc.get("/admin/audit/events", **{"from": future})).json()["items"] == []
    assert len((await svc.get("/admin/audit/events", to=future)).json()["items"]) == 7


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "bm90LW91cnM"},
        {"from": "yesterday"},
        {"from": "2026-01-01T00:00:00"},
        {"limit": 0},
        # NUL cannot be in PostgreSQL text: refused before the query, not a 500 from it
        {"request_id": "req\x00id"},
        {"action": "payment.\x00"},
        {"entity_id": "line\nbreak"},
    ],
)
async def test_bad_filters_are_a_422_problem(svc: Any, params: dict[str, Any]) -> None:
    response = await svc.get("/admin/audit/events", **params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_export_streams_jsonl_and_csv_that_re_hash(svc: Any) -> None:
    records = await seed(
        svc, [audit_event("user.role_changed", entity_id=f"u{i}") for i in range(25)]
    )
    svc.settings.export_page_size = 10  # three pages
    jsonl = await svc.get("/admin/audit/export", format="jsonl")
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 26))
    assert all(record_hash(line["prev_hash"], line) == line["hash"] for line in lines)

    exported = await svc.get("/admin/audit/export", format="csv", action="user.role_changed")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["hash"] for r in rows] == [r["hash"] for r in records]
    assert rows[0]["entity_id"] == "u0"

    bad = await svc.get("/admin/audit/export", format="xml")
    assert bad.status_code == 422


async def test_csv_cells_never_start_a_spreadsheet_formula(svc: Any) -> None:
    await seed(svc, [audit_event("user.updated", entity_id='=HYPERLINK("http://x")')])
    rows = list(
        csv.DictReader(io.StringIO((await svc.get("/admin/audit/export", format="csv")).text))
    )
    assert rows[0]["entity_id"].startswith("'=")


async def test_summary_counts_actions_failed_signins_and_refunds(svc: Any) -> None:
    alice, mallory = uuid.uuid4(), uuid.uuid4()
    await seed(
        svc,
        [
            *[
                audit_event(
                    "auth.signin_failed",
                    entity_id="acct-1",
                    source_ip="192.0.2.9",
                    outcome=AuditOutcome.FAILED,
                )
                for _ in range(3)
            ],
            audit_event(
                "auth.signin_failed",
                entity_id="acct-2",
                source_ip="192.0.2.9",
                outcome=AuditOutcome.FAILED,
            ),
            audit_event("auth.signed_in", actor_id=alice, entity_id=str(alice)),
            *[
                audit_event("payment.refund_requested", actor_id=mallory, entity_type="payment")
                for _ in range(2)
            ],
            audit_event("payment.refund_requested", actor_id=alice, entity_type="payment"),
        ],
    )
    report = (await svc.get("/admin/audit/summary")).json()
    today = datetime.now(UTC).date().isoformat()
    assert {(d["day"], d["action"], d["count"]) for d in report["actions_per_day"]} == {
        (today, "auth.signin_failed", 4),
        (today, "auth.signed_in", 1),
        (today, "payment.refund_requested", 3),
    }
    assert report["failed_signins_per_account"] == [
        {"key": "acct-1", "count": 3},
        {"key": "acct-2", "count": 1},
    ]
    assert report["failed_signins_per_ip"] == [{"key": "192.0.2.9", "count": 4}]
    assert report["refunds_per_actor"] == [
        {"key": str(mallory), "count": 2},
        {"key": str(alice), "count": 1},
    ]


def test_production_refuses_the_development_checkpoint_key() -> None:
    from pydantic import ValidationError

    from audit_service.settings import Settings

    with pytest.raises(ValidationError, match="checkpoint_key"):
        Settings(environment="production", service_token_secret="s" * 48)
    settings = Settings(
        environment="production", service_token_secret="s" * 48, checkpoint_key="k" * 48
    )
    assert settings.checkpoint_key.get_secret_value() == "k" * 48
