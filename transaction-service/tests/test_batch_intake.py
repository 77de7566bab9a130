"""The ledger's batch handler: duplicates in and before the batch, and a batch with a bad event."""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from paygate_common.events import PaymentStatus

S = PaymentStatus


async def test_duplicates_in_the_batch_and_in_the_inbox_post_once(
    start_ledger: Any, make_payment_event: Any
) -> None:
    merchant = uuid.uuid4()
    paid, held = uuid.uuid4(), uuid.uuid4()
    first = make_payment_event(payment_id=paid, user_id=merchant, status=S.PROCESSING, amount=900)
    captured = make_payment_event(
        payment_id=paid, user_id=merchant, status=S.SUCCEEDED, amount=900, amount_captured=900
    )
    hold = make_payment_event(
        payment_id=held,
        user_id=merchant,
        status=S.REQUIRES_CAPTURE,
        amount=400,
        amount_capturable=400,
        capture_method="manual",
    )
    async with start_ledger(fee_basis_points=0, fee_fixed=0) as ledger:
        await ledger.apply([first])
        # `first` is in the inbox already; `captured` comes twice within the batch.
        await ledger.apply([first, captured, hold, captured])
        assert ledger.fallbacks == 0
        entries = await ledger.sql(
            "SELECT payment_id, captured FROM journal_entries ORDER BY captured"
        )
        assert sorted((p, c) for p, c in entries) == sorted([(held, 0), (paid, 900)])
        rows = await ledger.sql(
            "SELECT id, status, amount_captured, amount_pending FROM transactions ORDER BY id"
        )
        assert {r.id: (r.status, r.amount_captured, r.amount_pending) for r in rows} == {
            paid: ("succeeded", 900, 0),
            held: ("requires_capture", 0, 400),
        }
        inbox = await ledger.sql("SELECT count(*) FROM inbox")
        assert inbox[0][0] == 3


async def test_a_bad_event_in_a_batch_is_dead_lettered_and_the_rest_posted_once(
    start_ledger: Any, make_payment_event: Any, ledger_kafka: Any
) -> None:
    merchant = uuid.uuid4()
    good = [
        make_payment_event(
            payment_id=uuid.uuid4(),
            user_id=merchant,
            status=S.SUCCEEDED,
            amount=100 * (i + 1),
            amount_captured=100 * (i + 1),
        )
        for i in range(4)
    ]
    bad = good[0].model_copy(
        update={"event_id": uuid.uuid4(), "payload": {**good[0].payload, "amount": "lots"}}
    )
    producer = AIOKafkaProducer(bootstrap_servers=ledger_kafka.bootstrap)
    await producer.start()
    try:
        async with start_ledger(fee_basis_points=0, fee_fixed=0) as ledger:
            ledger.runner.producer = producer
            await ledger.apply([good[0], good[1], bad, good[2], good[3]])
            assert ledger.fallbacks == 1  # the batch raised, then went event by event
            await ledger.apply(good)  # redelivered: the inbox skips every one
            entries = await ledger.sql(
                "SELECT event_id, captured FROM journal_entries ORDER BY captured"
            )
            assert [(e, c) for e, c in entries] == [(g.event_id, g.payload["amount"]) for g in good]
            outcomes = await ledger.sql("SELECT event_id, outcome FROM inbox")
            assert dict((e, o) for e, o in outcomes) == {
                **{g.event_id: "applied" for g in good},
                bad.event_id: "dead_lettered",
            }
            available = await ledger.sql(
                "SELECT credits_posted - debits_posted FROM ledger_accounts "
                "WHERE kind = 'merchant_available' AND owner = :m",
                m=str(merchant),
            )
            assert available[0][0] == 1000
    finally:
        await producer.stop()
