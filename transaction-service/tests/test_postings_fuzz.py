"""A seeded storm of payment-event sequences leaves the books balanced and every balance right.

Each sequence is one payment's life (authorise, partial capture, void, partial refunds, failure,
old-producer events), then its events are duplicated (same event id, and re-sent with a new id),
reordered and interleaved with the other payments', and consumed in random batches through the
consumer runner's real batch path against PostgreSQL. Replay a failure with
`LEDGER_FUZZ_SEED=<seed printed below> pytest transaction-service/tests/test_postings_fuzz.py`.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from paygate_common.events import (
    EventEnvelope,
    PaymentStatus,
    RefundEvent,
    RefundStatus,
    new_event,
)
from transaction_service.domain.fees import FeeTerms
from transaction_service.domain.reconciliation import reconcile

SEQUENCES = int(os.environ.get("LEDGER_FUZZ_SEQUENCES", "1000"))
CURRENCIES = ("usd", "eur", "jpy")
PROVIDERS = ("stripe", "paypal", "sslcommerz")
S = PaymentStatus


@dataclass
class Expected:
    """What one payment should leave in the ledger, computed without the ledger's code."""

    user_id: uuid.UUID
    currency: str
    provider: str
    captured: int = 0
    refunded: int = 0
    pending: int = 0
    events: list[EventEnvelope] = field(default_factory=list)


def one_payment(rng: random.Random, make: Any, merchants: list[uuid.UUID]) -> Expected:
    payment_id = uuid.uuid4()
    exp = Expected(rng.choice(merchants), rng.choice(CURRENCIES), rng.choice(PROVIDERS))
    amount = rng.randint(1, 500_000)
    kind = rng.choices(
        ["automatic", "manual_capture", "void", "failed", "legacy", "held"],
        weights=[30, 30, 12, 12, 8, 8],
    )[0]

    def event(status: PaymentStatus, **totals: Any) -> None:
        exp.events.append(
            make(
                payment_id=payment_id,
                user_id=exp.user_id,
                status=status,
                amount=amount,
                currency=exp.currency,
                provider=exp.provider,
                order_id=uuid.uuid4() if rng.random() < 0.5 else None,
                capture_method="automatic"
                if kind in ("automatic", "legacy", "failed")
                else "manual",
                **totals,
            )
        )

    event(S.PROCESSING)
    if rng.random() < 0.3:
        event(S.REQUIRES_ACTION)
    captured = 0
    if kind == "failed":
        event(S.FAILED)
    elif kind in ("manual_capture", "void", "held"):
        event(S.REQUIRES_CAPTURE, amount_capturable=amount)
        if kind == "void":
            event(S.CANCELLED)
        elif kind == "held":
            exp.pending = amount
        else:
            captured = rng.randint(1, amount)
            event(S.SUCCEEDED, amount_captured=captured)
    elif kind == "legacy":
        captured = amount
        event(S.SUCCEEDED)  # the old producer: amount_captured == 0 on an automatic capture
    else:
        captured = amount
        event(S.SUCCEEDED, amount_captured=captured)

    def refund(status: RefundStatus, refund_id: uuid.UUID, amount: int) -> None:
        payload = RefundEvent(
            refund_id=refund_id,
            payment_id=payment_id,
            user_id=exp.user_id,
            status=status,
            amount=amount,
            currency=exp.currency,
            provider=exp.provider,
        )
        exp.events.append(
            new_event(payload, producer="payment-service", aggregate_id=str(payment_id))
        )

    refunded = 0
    # A producer that publishes refund.<status> does so for every refund; whether a payment
    # event with the new totals follows each refund varies (a second partial refund is no
    # status change).
    refund_events = rng.random() < 0.6
    if captured:
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            if refunded >= captured:
                break
            step = rng.randint(1, captured - refunded)
            refunded += step
            how = rng.choice(["refund", "both"]) if refund_events else "payment"
            if how in ("refund", "both"):
                refund_id = uuid.uuid4()
                if rng.random() < 0.5:
                    refund(RefundStatus.PENDING, refund_id, step)
                refund(RefundStatus.SUCCEEDED, refund_id, step)
            if how in ("payment", "both"):
                status = S.REFUNDED if refunded == captured else S.PARTIALLY_REFUNDED
                event(status, amount_captured=captured, amount_refunded=refunded)
        if refund_events and rng.random() < 0.2:  # a declined refund moves nothing
            refund_id = uuid.uuid4()
            refund(RefundStatus.PENDING, refund_id, rng.randint(1, captured))
            refund(RefundStatus.FAILED, refund_id, rng.randint(1, captured))
    exp.captured, exp.refunded = captured, refunded

    # Duplicates: the same envelope again, and the same totals under a new event id.
    for envelope in list(exp.events):
        if rng.random() < 0.2:
            exp.events.append(envelope)
        if rng.random() < 0.1:
            exp.events.append(envelope.model_copy(update={"event_id": uuid.uuid4()}))
    # Reordering: a payment's events arrive in any order (another partition, a replay).
    if rng.random() < 0.5:
        rng.shuffle(exp.events)
    return exp


def interleave(rng: random.Random, payments: list[Expected]) -> list[EventEnvelope]:
    """Merge the payments' event lists at random positions, each list's own order kept."""
    queues = [list(p.events) for p in payments]
    slots = [i for i, q in enumerate(queues) for _ in q]
    rng.shuffle(slots)
    cursors = [0] * len(queues)
    merged = []
    for i in slots:
        merged.append(queues[i][cursors[i]])
        cursors[i] += 1
    return merged


# The acceptance run is 1,000 sequences; refunds that give the fee back run a smaller storm.
@pytest.mark.parametrize(
    ("refund_returns_fee", "sequences"),
    [(False, SEQUENCES), (True, max(1, SEQUENCES * 3 // 10))],
    ids=["fee-kept", "fee-returned"],
)
async def test_random_event_storm_keeps_the_books_right(
    start_ledger: Any, make_payment_event: Any, refund_returns_fee: bool, sequences: int
) -> None:
    seed = int(os.environ.get("LEDGER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(
        f"\nLEDGER_FUZZ_SEED={seed} sequences={sequences} refund_returns_fee={refund_returns_fee}"
    )
    rng = random.Random(seed)
    merchants = [uuid.uuid4() for _ in range(40)]
    payments = [one_payment(rng, make_payment_event, merchants) for _ in range(sequences)]
    stream = interleave(rng, payments)
    terms = FeeTerms(basis_points=290, fixed=30, returned_on_refund=refund_returns_fee)

    async with start_ledger(
        fee_basis_points=290, fee_fixed=30, refund_returns_fee=refund_returns_fee
    ) as ledger:
        at = 0
        while at < len(stream):
            size = rng.randint(1, 250)
            await ledger.apply(stream[at : at + size])
            at += size
        where = f"(seed {seed})"

        unbalanced = await ledger.sql(
            "SELECT entry_id, currency, sum(amount) FROM journal_lines "
            "GROUP BY entry_id, currency HAVING sum(amount) <> 0"
        )
        assert unbalanced == [], where

        trial = await ledger.sql(
            "SELECT currency, sum(amount) FILTER (WHERE amount > 0), "
            "-sum(amount) FILTER (WHERE amount < 0) FROM journal_lines GROUP BY currency"
        )
        assert {c for c, _, _ in trial} == set(CURRENCIES), where
        for currency, debits, credits in trial:
            assert debits == credits, f"{currency} {where}"

        drift = await ledger.sql(
            "SELECT a.id FROM ledger_accounts a LEFT JOIN journal_lines l ON l.account_id = a.id "
            "GROUP BY a.id HAVING a.debits_posted <> coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0) "
            "OR a.credits_posted <> coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0)"
        )
        assert drift == [], f"account totals differ from their lines {where}"

        negative = await ledger.sql(
            "SELECT kind, owner, currency FROM ledger_accounts WHERE must_not_go_negative AND "
            "((normal_balance = 'credit' AND debits_posted > credits_posted) OR "
            " (normal_balance = 'debit' AND credits_posted > debits_posted))"
        )
        assert negative == [], where

        # Per merchant and currency: captured - refunded - fees (net of fees given back).
        want_available: dict[tuple[str, str], int] = defaultdict(int)
        want_pending: dict[tuple[str, str], int] = defaultdict(int)
        want_fees: dict[str, int] = defaultdict(int)
        want_clearing: dict[tuple[str, str], int] = defaultdict(int)
        want_refunds: dict[tuple[str, str], int] = defaultdict(int)
        want_authorized: dict[tuple[str, str], int] = defaultdict(int)
        for p in payments:
            fee = terms.fee_for(p.captured)
            fee_back = terms.fee_returned_for(fee, p.captured, p.refunded)
            key = (str(p.user_id), p.currency)
            want_available[key] += p.captured - p.refunded - fee + fee_back
            want_pending[key] += p.pending
            want_fees[p.currency] += fee - fee_back
            want_clearing[(p.provider, p.currency)] += p.captured
            want_refunds[(p.provider, p.currency)] += p.refunded
            want_authorized[(p.provider, p.currency)] += p.pending

        rows = await ledger.sql(
            "SELECT kind, owner, currency, normal_balance, debits_posted, credits_posted "
            "FROM ledger_accounts"
        )
        got: dict[str, dict[Any, int]] = defaultdict(dict)
        for kind, owner, currency, normal, debits, credits in rows:
            balance = credits - debits if normal == "credit" else debits - credits
            got[kind][(owner, currency) if kind != "platform_fees" else currency] = balance

        def nonzero(d: dict[Any, int]) -> dict[Any, int]:
            return {k: v for k, v in d.items() if v}

        assert nonzero(got["merchant_available"]) == nonzero(want_available), where
        assert nonzero(got["merchant_pending"]) == nonzero(want_pending), where
        assert nonzero(got["platform_fees"]) == nonzero(want_fees), where
        assert nonzero(got["provider_clearing"]) == nonzero(want_clearing), where
        assert nonzero(got["provider_refunds"]) == nonzero(want_refunds), where
        assert nonzero(got["provider_authorizations"]) == nonzero(want_authorized), where

        rows = await ledger.sql(
            "SELECT id, amount_captured, amount_refunded, amount_pending FROM transactions"
        )
        by_id = {r[0]: r[1:] for r in rows}
        for p in payments:
            payment_id = p.events[0].payload["payment_id"]
            assert by_id[uuid.UUID(payment_id)] == (p.captured, p.refunded, p.pending), where

        entries = await ledger.sql("SELECT count(*), count(DISTINCT event_id) FROM journal_entries")
        assert entries[0][0] == entries[0][1], f"an event posted twice {where}"

        async with ledger.sessionmaker() as session:
            report = await reconcile(session=session)
        assert report.ok, f"{report} {where}"


async def ledger_state(ledger: Any) -> dict[str, list[Any]]:
    """Everything the consumer writes, without the ids and clocks that differ between runs."""
    return {
        "transactions": await ledger.sql(
            "SELECT id, user_id, order_id, provider, currency, capture_method, amount, status, "
            "phase, amount_pending, amount_captured, amount_refunded, fee, fee_refunded, "
            "fee_basis_points, fee_fixed, fee_returned_on_refund, reported_captured, "
            "reported_refunded, last_event_at FROM transactions ORDER BY id"
        ),
        "entries": await ledger.sql(
            "SELECT event_id, kind, payment_id, user_id, currency, captured, refunded, fees, "
            "description FROM journal_entries ORDER BY event_id"
        ),
        "lines": await ledger.sql(
            "SELECT e.event_id, a.kind, a.owner, l.currency, l.amount FROM journal_lines l "
            "JOIN journal_entries e ON e.id = l.entry_id "
            "JOIN ledger_accounts a ON a.id = l.account_id ORDER BY 1, 2, 3, 4, 5"
        ),
        "accounts": await ledger.sql(
            "SELECT kind, owner, currency, debits_posted, credits_posted, must_not_go_negative "
            "FROM ledger_accounts ORDER BY 1, 2, 3"
        ),
        "refunds": await ledger.sql(
            "SELECT id, payment_id, amount, status FROM refunds ORDER BY id"
        ),
        "inbox": await ledger.sql("SELECT event_id, outcome FROM inbox ORDER BY event_id"),
    }


async def test_the_batch_handler_posts_exactly_what_event_by_event_posts(
    start_ledger: Any, make_payment_event: Any
) -> None:
    """The same storm in the same batches, once through the batch handler, once event by event."""
    seed = int(os.environ.get("LEDGER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nLEDGER_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    merchants = [uuid.uuid4() for _ in range(10)]
    payments = [one_payment(rng, make_payment_event, merchants) for _ in range(150)]
    stream = interleave(rng, payments)
    cuts = [0]
    while cuts[-1] < len(stream):
        cuts.append(cuts[-1] + rng.randint(1, 120))
    states = []
    for batched in (True, False):
        async with start_ledger(batched=batched, fee_basis_points=290, fee_fixed=30) as ledger:
            for start, end in itertools.pairwise(cuts):
                await ledger.apply(stream[start:end])
            states.append(await ledger_state(ledger))
            if batched:
                # Every batch took the fast path: nothing fell back to event by event.
                assert ledger.fallbacks == 0, f"seed {seed}"
    batched_state, one_by_one = states
    assert len(batched_state["entries"]) > 100
    for table, rows in one_by_one.items():
        assert batched_state[table] == rows, f"{table} differs (seed {seed})"
