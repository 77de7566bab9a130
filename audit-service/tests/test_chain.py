"""The hash chain holds over 10,000 records, names an altered record, exposes a removed tail,
and the service's own database role can neither update nor delete a record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit_service.domain.chain import GENESIS_HASH, canonical_json, record_hash
from audit_service.domain.records import draft_record
from audit_service.events.handlers import audit_consumer
from audit_service.store.records import append_records
from audit_service.workers.checkpoints import CheckpointSigner, checkpoint_once
from paygate_common.db import unit_of_work
from paygate_common.events import EventEnvelope, PaymentEvent, PaymentStatus, new_event
from paygate_common.events.models import AuditAction
from paygate_devstack.consumer_testing import BatchFeeder
from paygate_devstack.events_testing import wait_for


def payment_envelope(i: int, occurred_at: datetime | None = None) -> EventEnvelope:
    payload = PaymentEvent(
        payment_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        status=PaymentStatus.SUCCEEDED,
        amount=1000 + i,
        currency="usd",
        provider="stripe",
    )
    envelope = new_event(payload, producer="payment-service", aggregate_id=str(payload.order_id))
    if occurred_at is not None:
        envelope = envelope.model_copy(update={"occurred_at": occurred_at})
    return envelope


async def append(svc: Any, envelopes: list[EventEnvelope]) -> list[dict[str, Any]]:
    async with unit_of_work(svc.app.state.sessionmaker) as session:
        return await append_records(session, [draft_record(e) for e in envelopes])


async def verify(svc: Any) -> dict[str, Any]:
    response = await svc.get("/admin/audit/verify")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1.0, "é", None]}) == '{"a":[1,"é",null],"b":1}'.encode()


def test_record_hash_covers_prev_hash_and_every_field() -> None:
    record = draft_record(payment_envelope(1)) | {"seq": 1}
    first = record_hash(GENESIS_HASH, record)
    assert record_hash("1" * 64, record) != first
    assert record_hash(GENESIS_HASH, record | {"details": {"amount": 1}}) != first
    assert record_hash(GENESIS_HASH, record | {"seq": 2}) != first


async def test_verify_holds_over_10000_records_then_names_the_altered_one_and_the_cut_tail(
    start_audit_service: Any,
) -> None:
    async with start_audit_service(consumer_enabled=False, checkpoint_interval_seconds=3600) as svc:
        # The service's own signer makes its first pass at start (on an empty chain: nothing to
        # sign) and the next one an hour later: once it has passed, no checkpoint can appear.
        [signer] = [w for w in svc.app.state.workers if isinstance(w, CheckpointSigner)]
        await wait_for(lambda: signer.passes >= 1, timeout=30)
        records = await append(svc, [payment_envelope(i) for i in range(10_000)])
        assert [r["seq"] for r in records] == list(range(1, 10_001))

        result = await verify(svc)
        assert result == {
            "checkpoint_seq": None,
            "ok": True,
            "checked": 10_000,
            "first_broken_id": None,
            "first_broken_seq": None,
            "reason": None,
            "head_seq": 10_000,
        }

        await checkpoint_once(svc.app.state.sessionmaker, svc.settings)
        checkpoints = await svc.sql(
            "SELECT record_count, head_seq, head_hash FROM audit_checkpoints"
        )
        assert checkpoints and {(c.record_count, c.head_seq, c.head_hash) for c in checkpoints} == {
            (10_000, 10_000, records[-1]["hash"])
        }

        # A superuser rewrites one record's payload behind the trigger's back.
        victim = records[4_321]
        async with svc.superuser.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                text(
                    "UPDATE audit_records SET details = jsonb_set(details, '{amount}', '1')"
                    " WHERE seq = :seq"
                ),
                {"seq": victim["seq"]},
            )
        result = await verify(svc)
        assert result["ok"] is False
        assert result["first_broken_id"] == str(victim["id"])
        assert result["first_broken_seq"] == victim["seq"]
        assert result["checked"] == victim["seq"] - 1
        assert "altered" in result["reason"]

        # Put it back: the chain holds again (the hash covers the content, nothing else).
        async with svc.superuser.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                text("UPDATE audit_records SET details = CAST(:d AS jsonb) WHERE seq = :seq"),
                {"seq": victim["seq"], "d": canonical_json(victim["details"]).decode()},
            )
        assert (await verify(svc))["ok"] is True

        # Delete the last 10 records: every remaining link holds, the checkpoint exposes it.
        async with svc.superuser.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text("DELETE FROM audit_records WHERE seq > 9990"))
        result = await verify(svc)
        assert result["ok"] is False
        assert result["checked"] == 9_990
        assert result["head_seq"] == 9_990
        assert result["checkpoint_seq"] == 10_000
        assert result["first_broken_seq"] == 9_991
        assert result["reason"].startswith("truncated")


async def test_a_deleted_record_in_the_middle_is_reported_as_a_gap(
    start_audit_service: Any,
) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        records = await append(svc, [payment_envelope(i) for i in range(50)])
        async with svc.superuser.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text("DELETE FROM audit_records WHERE seq = 20"))
        result = await verify(svc)
        assert result["ok"] is False
        assert result["first_broken_id"] == str(records[20]["id"])  # seq 21, after the gap
        assert "missing" in result["reason"]


async def test_a_forged_checkpoint_is_refused(start_audit_service: Any) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        await append(svc, [payment_envelope(i) for i in range(5)])
        await svc.sql(
            "INSERT INTO audit_checkpoints (created_at, record_count, head_seq, head_hash,"
            " signature) VALUES (now(), 3, 3, 'x', 'not-a-signature')"
        )
        result = await verify(svc)
        assert result["ok"] is False
        assert "signature" in result["reason"]


async def test_two_appenders_never_fork_the_chain(start_audit_service: Any) -> None:
    """Concurrent transactions (as two consumer processes would run) serialise on the lock."""
    import asyncio

    async with start_audit_service(consumer_enabled=False) as svc:
        await asyncio.gather(
            *(append(svc, [payment_envelope(i * 10 + j) for j in range(10)]) for i in range(8))
        )
        rows = await svc.sql("SELECT seq, prev_hash, hash FROM audit_records ORDER BY seq")
        assert [r.seq for r in rows] == list(range(1, 81))
        assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 80))
        assert (await verify(svc))["ok"] is True


async def test_redelivered_events_stay_one_record(start_audit_service: Any) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        envelope = payment_envelope(1)
        await append(svc, [envelope])
        assert await append(svc, [envelope, envelope]) == []
        assert (await svc.sql("SELECT count(*) FROM audit_records"))[0][0] == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET action = 'auth.nothing_happened'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
        "UPDATE audit_checkpoints SET head_seq = 1",
        "DELETE FROM audit_checkpoints",
    ],
)
async def test_the_service_role_cannot_change_or_remove_history(
    start_audit_service: Any, statement: str
) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        await append(svc, [payment_envelope(1)])
        await checkpoint_once(svc.app.state.sessionmaker, svc.settings)
        # The service's own engine, which acts as the writer role.
        async with svc.app.state.engine.connect() as conn:
            role = (await conn.execute(text("SELECT current_user"))).scalar_one()
            assert role == svc.settings.db_role
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text(statement))
        assert (await svc.sql("SELECT count(*) FROM audit_records"))[0][0] == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET action = 'x'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ],
)
async def test_the_trigger_refuses_changes_even_by_the_owner(
    start_audit_service: Any, statement: str
) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        await append(svc, [payment_envelope(1)])
        with pytest.raises(DBAPIError, match="insert-only"):
            await svc.sql(statement)


async def test_the_checkpoint_worker_signs_the_head_periodically(start_audit_service: Any) -> None:
    async with start_audit_service(consumer_enabled=False, checkpoint_interval_seconds=0.2) as svc:
        records = await append(svc, [payment_envelope(i) for i in range(3)])

        async def signed_head() -> Any:
            rows = await svc.sql("SELECT head_seq, head_hash FROM audit_checkpoints ORDER BY id")
            return rows and rows[-1].head_seq == 3 and rows[-1].head_hash == records[-1]["hash"]

        await wait_for(signed_head, timeout=20)
        latest = await svc.get("/admin/audit/checkpoints/latest")
        assert latest.status_code == 200
        assert latest.json()["head_seq"] == 3


async def test_retention_exports_old_records_with_a_signed_manifest_and_deletes_nothing(
    start_audit_service: Any, tmp_path: Any
) -> None:
    import hashlib
    import json

    from audit_service.workers.retention import archive_once

    async with start_audit_service(
        consumer_enabled=False,
        retention_days=30,
        archive_dir=str(tmp_path),
        archive_interval_seconds=3600,
    ) as svc:
        records = await append(svc, [payment_envelope(i) for i in range(6)])
        now = datetime.now(UTC)
        # Nothing is past 30 days yet; 40 days from now, everything is (`recorded_at`).
        assert await archive_once(svc.app.state.sessionmaker, svc.settings, now=now) is None
        later = now + timedelta(days=40)
        manifest = await archive_once(svc.app.state.sessionmaker, svc.settings, now=later)
        assert manifest is not None
        assert (manifest["from_seq"], manifest["to_seq"], manifest["record_count"]) == (1, 6, 6)
        assert manifest["first_prev_hash"] == GENESIS_HASH
        assert manifest["last_hash"] == records[-1]["hash"]
        with open(manifest["location"], "rb") as archived:
            data = archived.read()
        assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
        lines = [json.loads(line) for line in data.splitlines()]
        assert [line["hash"] for line in lines] == [r["hash"] for r in records]
        # Each archived line re-hashes offline to its stored hash.
        for line in lines:
            assert record_hash(line["prev_hash"], line) == line["hash"]
        assert await archive_once(svc.app.state.sessionmaker, svc.settings, now=later) is None
        assert (await svc.sql("SELECT count(*) FROM audit_records"))[0][0] == 6
        assert (await verify(svc))["ok"] is True

        # A checkpoint whose head (seq 6) is about to be pruned: the manifest vouches for it.
        await checkpoint_once(svc.app.state.sessionmaker, svc.settings)
        # A DBA prunes the archived range (outside the service): verify joins the archive's
        # signed last hash to the first remaining record.
        more = await append(svc, [payment_envelope(100 + i) for i in range(3)])
        async with svc.superuser.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text("DELETE FROM audit_records WHERE seq <= 6"))
        result = await verify(svc)
        assert result["ok"] is True, result
        assert result["checked"] == 3
        assert result["head_seq"] == more[-1]["seq"]
        listed = await svc.get("/admin/audit/archives")
        assert [a["to_seq"] for a in listed.json()] == [6]


async def test_concurrent_archivers_archive_each_range_exactly_once(
    start_audit_service: Any, tmp_path: Any
) -> None:
    import asyncio

    from audit_service.workers.retention import archive_once

    async with start_audit_service(
        consumer_enabled=False,
        retention_days=30,
        archive_dir=str(tmp_path),
        archive_interval_seconds=3600,
        archive_batch_size=3,
    ) as svc:
        await append(svc, [payment_envelope(i) for i in range(6)])
        later = datetime.now(UTC) + timedelta(days=40)
        sessionmaker = svc.app.state.sessionmaker
        results = await asyncio.gather(
            *(archive_once(sessionmaker, svc.settings, now=later) for _ in range(4))
        )
        spans = sorted((m["from_seq"], m["to_seq"]) for m in results if m is not None)
        assert spans == [(1, 3), (4, 6)]
        rows = await svc.sql("SELECT from_seq, to_seq FROM audit_archives ORDER BY from_seq")
        assert [tuple(r) for r in rows] == [(1, 3), (4, 6)]
        assert (await verify(svc))["ok"] is True


async def test_a_consumed_batch_is_linked_at_commit_in_the_order_events_happened(
    start_audit_service: Any,
) -> None:
    """As the runner applies a batch: one savepoint per event, one commit for the batch."""
    from audit_service.events.handlers import record_event

    async with start_audit_service(consumer_enabled=False) as svc:
        now = datetime.now(UTC)
        later = payment_envelope(1, occurred_at=now)
        earlier = payment_envelope(2, occurred_at=now - timedelta(seconds=5))
        async with unit_of_work(svc.app.state.sessionmaker) as session:
            for envelope in (later, earlier):  # fetched in this order from two partitions
                async with session.begin_nested():
                    await record_event(session, envelope)
            # Nothing is linked before the batch commits (the lock is taken at the end).
            assert (await session.execute(text("SELECT count(*) FROM audit_records"))).scalar() == 0
        rows = await svc.sql("SELECT event_id FROM audit_records ORDER BY seq")
        assert [r.event_id for r in rows] == [earlier.event_id, later.event_id]
        assert (await verify(svc))["ok"] is True


async def test_an_event_that_cannot_be_hashed_fails_alone_not_its_batch(
    start_audit_service: Any,
) -> None:
    from audit_service.events.handlers import record_event

    async with start_audit_service(consumer_enabled=False) as svc:
        good = payment_envelope(1)
        bad = EventEnvelope(
            event_type="order.shipped",
            producer="order-service",
            aggregate_id="o1",
            payload={"weight": float("nan")},
        )
        async with unit_of_work(svc.app.state.sessionmaker) as session:
            with pytest.raises(ValueError):
                async with session.begin_nested():
                    await record_event(session, bad)
            async with session.begin_nested():
                await record_event(session, good)
        rows = await svc.sql("SELECT event_id FROM audit_records")
        assert [r.event_id for r in rows] == [good.event_id]


def feeder(svc: Any, *, batched: bool = True) -> BatchFeeder:
    """The service's own consumer spec on the real runner, fed batches without Kafka."""
    return BatchFeeder(
        audit_consumer(max_attempts=1, batch_size=200),
        settings=svc.app.state.settings,
        sessionmaker=svc.app.state.sessionmaker,
        producer=svc.producer,
        batched=batched,
    )


TRAIL = "event_id, seq, event_type, action, outcome, actor_id, entity_type, entity_id, details"


async def test_a_batch_is_linked_as_event_by_event_links_it(start_audit_service: Any) -> None:
    now = datetime.now(UTC)
    seen = payment_envelope(0, occurred_at=now - timedelta(seconds=9))
    late = payment_envelope(1, occurred_at=now)
    early = payment_envelope(2, occurred_at=now - timedelta(seconds=5))
    tie = [payment_envelope(3 + i, occurred_at=now - timedelta(seconds=2)) for i in range(3)]
    # `seen` is in the inbox before the batch; `early` comes twice within it.
    batch = [late, seen, early, *tie, early]
    trails = []
    for batched in (True, False):
        async with start_audit_service(consumer_enabled=False) as svc:
            consumer = feeder(svc, batched=batched)
            await consumer.apply([seen])
            await consumer.apply(batch)
            assert consumer.fallbacks == 0
            trails.append(await svc.sql(f"SELECT {TRAIL} FROM audit_records ORDER BY seq"))
            assert (await verify(svc))["ok"] is True
    batched_trail, one_by_one = trails
    assert batched_trail == one_by_one
    assert [r.event_id for r in batched_trail] == [e.event_id for e in (seen, early, *tie, late)]


async def test_a_batch_with_a_malformed_event_records_the_rest_once(
    start_audit_service: Any,
) -> None:
    async with start_audit_service(consumer_enabled=False) as svc:
        good = [payment_envelope(i) for i in range(4)]
        # An audit action without its action, entity or outcome cannot be drafted.
        bad = EventEnvelope(
            event_type=AuditAction.event_type,
            producer="user-service",
            aggregate_id="u1",
            payload={"actor_id": "u1"},
        )
        consumer = feeder(svc)
        await consumer.apply([good[0], bad, *good[1:]])
        assert consumer.fallbacks == 1
        await consumer.apply(good)  # redelivered: nothing new
        rows = await svc.sql("SELECT event_id FROM audit_records ORDER BY seq")
        assert [r.event_id for r in rows] == [e.event_id for e in good]
        outcome = await svc.sql("SELECT outcome FROM inbox WHERE event_id = :e", e=bad.event_id)
        assert [r.outcome for r in outcome] == ["dead_lettered"]
        assert (await verify(svc))["ok"] is True
