"""The database itself refuses to break the ledger: unbalanced entries, edits, deletes, overdrafts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from paygate_common.events import PaymentStatus


@pytest.fixture(scope="module")
async def ledger(start_ledger: Any) -> Any:
    async with start_ledger() as ledger:
        yield ledger


async def posted_capture(ledger: Any, make_payment_event: Any) -> uuid.UUID:
    payment = uuid.uuid4()
    await ledger.apply(
        [
            make_payment_event(
                payment_id=payment,
                user_id=uuid.uuid4(),
                status=PaymentStatus.SUCCEEDED,
                amount=1000,
                amount_captured=1000,
            )
        ]
    )
    return payment


async def run_as(ledger: Any, statement: str, *, role: bool, **params: Any) -> None:
    """Execute in a transaction of its own, as the service's role or as the (super)user."""
    engine = ledger.engine if role else ledger.owner_engine
    async with engine.begin() as conn:
        await conn.execute(text(statement), params)


async def post_correction(
    ledger: Any, *lines: tuple[int, str, int], description: str | None = None
) -> int:
    """A hand-written `correction` entry with `lines` (account, currency, amount) in one
    statement, committed as the service's role: the database's rules judge it at commit."""
    values = ", ".join(f"(:e, :a{i}, :c{i}, :m{i})" for i in range(len(lines)))
    params: dict[str, Any] = {}
    for i, (account, currency, amount) in enumerate(lines):
        params |= {f"a{i}": account, f"c{i}": currency, f"m{i}": amount}
    async with ledger.engine.begin() as conn:
        entry: int = (
            await conn.execute(
                text(
                    "INSERT INTO journal_entries (kind, description) "
                    "VALUES ('correction', :d) RETURNING id"
                ),
                {"d": description},
            )
        ).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO journal_lines (entry_id, account_id, currency, amount) "
                f"VALUES {values}"
            ),
            {"e": entry, **params},
        )
    return entry


def sqlstate(exc: pytest.ExceptionInfo[DBAPIError]) -> str:
    return str(getattr(exc.value.orig, "sqlstate", "") or getattr(exc.value.orig, "pgcode", ""))


@pytest.mark.parametrize("role", [True, False], ids=["service-role", "superuser"])
async def test_a_journal_line_cannot_be_updated(
    ledger: Any, make_payment_event: Any, role: bool
) -> None:
    payment = await posted_capture(ledger, make_payment_event)
    with pytest.raises(DBAPIError) as exc:
        await run_as(
            ledger,
            "UPDATE journal_lines SET amount = amount * 2 WHERE entry_id IN "
            "(SELECT id FROM journal_entries WHERE payment_id = :p)",
            role=role,
            p=payment,
        )
    # The role lacks the privilege; a superuser passes that and is stopped by the trigger.
    assert sqlstate(exc) == "42501"
    assert ("permission denied" in str(exc.value)) is role
    assert ("insert-only" in str(exc.value)) is not role


@pytest.mark.parametrize("role", [True, False], ids=["service-role", "superuser"])
async def test_a_journal_line_cannot_be_deleted(
    ledger: Any, make_payment_event: Any, role: bool
) -> None:
    payment = await posted_capture(ledger, make_payment_event)
    with pytest.raises(DBAPIError) as exc:
        await run_as(
            ledger,
            "DELETE FROM journal_lines WHERE entry_id IN "
            "(SELECT id FROM journal_entries WHERE payment_id = :p)",
            role=role,
            p=payment,
        )
    assert sqlstate(exc) == "42501"
    rows = await ledger.sql(
        "SELECT count(*) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id "
        "WHERE e.payment_id = :p",
        p=payment,
    )
    assert rows[0][0] == 3  # clearing, merchant, fees: all still there


async def test_entries_and_lines_cannot_be_truncated_or_edited(ledger: Any) -> None:
    for statement in (
        "TRUNCATE journal_lines CASCADE",
        "UPDATE journal_entries SET captured = 0",
        "DELETE FROM journal_entries",
    ):
        with pytest.raises(DBAPIError) as exc:
            await run_as(ledger, statement, role=False)
        assert "insert-only" in str(exc.value), statement


async def test_the_service_role_cannot_write_account_totals(ledger: Any) -> None:
    with pytest.raises(DBAPIError) as exc:
        await run_as(ledger, "UPDATE ledger_accounts SET credits_posted = 1", role=True)
    assert "permission denied" in str(exc.value)


async def accounts(ledger: Any) -> tuple[int, int]:
    rows = await ledger.sql(
        "SELECT id FROM ledger_accounts WHERE currency = 'usd' ORDER BY id LIMIT 2"
    )
    return rows[0][0], rows[1][0]


async def test_an_unbalanced_entry_is_refused_at_commit(
    ledger: Any, make_payment_event: Any
) -> None:
    await posted_capture(ledger, make_payment_event)
    debit, credit = await accounts(ledger)
    with pytest.raises(DBAPIError) as exc:
        await post_correction(ledger, (debit, "usd", 500), (credit, "usd", -499))
    assert "does not balance" in str(exc.value)
    assert sqlstate(exc) == "23514"
    rows = await ledger.sql("SELECT count(*) FROM journal_entries WHERE kind = 'correction'")
    assert rows[0][0] == 0


async def test_a_balanced_correction_is_a_new_entry(ledger: Any, make_payment_event: Any) -> None:
    await posted_capture(ledger, make_payment_event)
    debit, credit = await accounts(ledger)
    entry = await post_correction(
        ledger, (debit, "usd", 1), (credit, "usd", -1), description="test"
    )
    rows = await ledger.sql("SELECT count(*) FROM journal_lines WHERE entry_id = :e", e=entry)
    assert rows[0][0] == 2


async def test_an_entry_without_lines_is_refused(ledger: Any) -> None:
    with pytest.raises(DBAPIError) as exc:
        await run_as(ledger, "INSERT INTO journal_entries (kind) VALUES ('correction')", role=True)
    assert "has no lines" in str(exc.value)


async def test_a_line_in_another_currency_than_its_account_is_refused(
    ledger: Any, make_payment_event: Any
) -> None:
    await posted_capture(ledger, make_payment_event)
    debit, credit = await accounts(ledger)
    with pytest.raises(DBAPIError) as exc:
        await post_correction(ledger, (debit, "eur", 5), (credit, "eur", -5))
    assert "currency differs" in str(exc.value)


async def test_an_account_flagged_never_negative_refuses_an_overdraft(
    ledger: Any, make_payment_event: Any
) -> None:
    await posted_capture(ledger, make_payment_event)
    rows = await ledger.sql(
        "SELECT id, credits_posted - debits_posted FROM ledger_accounts "
        "WHERE kind = 'platform_fees' AND currency = 'usd'"
    )
    fees, balance = rows[0]
    clearing = (
        await ledger.sql(
            "SELECT id FROM ledger_accounts WHERE kind = 'provider_clearing' AND currency = 'usd'"
        )
    )[0][0]
    with pytest.raises(DBAPIError) as exc:
        # Take one cent more out of fee revenue than it holds.
        await post_correction(ledger, (fees, "usd", balance + 1), (clearing, "usd", -balance - 1))
    assert "ck_ledger_accounts_never_negative" in str(exc.value)


async def test_one_event_produces_at_most_one_entry(ledger: Any, make_payment_event: Any) -> None:
    envelope = make_payment_event(
        payment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        status=PaymentStatus.SUCCEEDED,
        amount=2500,
        amount_captured=2500,
    )
    await ledger.apply([envelope, envelope])
    await ledger.apply([envelope])
    rows = await ledger.sql(
        "SELECT count(*) FROM journal_entries WHERE event_id = :e", e=envelope.event_id
    )
    assert rows[0][0] == 1
    with pytest.raises(DBAPIError) as exc:
        await run_as(
            ledger,
            "INSERT INTO journal_entries (event_id, kind) VALUES (:e, 'payment')",
            role=True,
            e=envelope.event_id,
        )
    assert "uq_journal_entries_event_id" in str(exc.value)
