"""Ledger queries: accounts, journal entries and lines, per-payment transactions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.domain.accounts import RULES, AccountKey, AccountKind
from transaction_service.store.tables import (
    journal_entries,
    journal_lines,
    ledger_accounts,
    refunds,
    transactions,
)

_ACCOUNT_CACHE = "ledger_account_ids"


async def account_ids(
    session: AsyncSession, keys: Iterable[AccountKey], *, merchant_no_negative: bool
) -> dict[AccountKey, int]:
    """The accounts' ids, creating the missing ones (cached for the unit of work)."""
    cache: dict[AccountKey, int] = session.info.setdefault(_ACCOUNT_CACHE, {})
    wanted = sorted(set(keys) - cache.keys())
    if wanted:
        await _load(session, wanted, cache)
        missing = [k for k in wanted if k not in cache]
        if missing:
            rows = []
            for k in missing:
                rules = RULES[k.kind]
                flagged = rules.must_not_go_negative or (
                    k.kind is AccountKind.MERCHANT_AVAILABLE and merchant_no_negative
                )
                rows.append(
                    {
                        "kind": k.kind.value,
                        "owner": k.owner,
                        "currency": k.currency,
                        "normal_balance": rules.normal_balance,
                        "must_not_go_negative": flagged,
                    }
                )
            await session.execute(
                pg_insert(ledger_accounts)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["kind", "owner", "currency"])
            )
            await _load(session, missing, cache)
    return {k: cache[k] for k in keys}


async def _load(
    session: AsyncSession, keys: Sequence[AccountKey], cache: dict[AccountKey, int]
) -> None:
    t = ledger_accounts.c
    rows = await session.execute(
        select(t.id, t.kind, t.owner, t.currency).where(
            tuple_(t.kind, t.owner, t.currency).in_(
                [(k.kind.value, k.owner, k.currency) for k in keys]
            )
        )
    )
    for row in rows:
        cache[AccountKey(AccountKind(row.kind), row.owner, row.currency)] = row.id


async def insert_entry(
    session: AsyncSession, *, event_id: uuid.UUID | None, **values: Any
) -> int | None:
    """A new journal entry; None when the event already has one (at most one per event)."""
    stmt = pg_insert(journal_entries).values(event_id=event_id, **values)
    if event_id is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"])
    result = await session.execute(stmt.returning(journal_entries.c.id))
    entry_id = result.scalar_one_or_none()
    return None if entry_id is None else int(entry_id)


async def insert_lines(
    session: AsyncSession, entry_id: int, lines: Sequence[tuple[int, str, int]]
) -> None:
    """The entry's lines in one statement (the account totals trigger runs once for them)."""
    await session.execute(
        journal_lines.insert().values(
            [
                {"entry_id": entry_id, "account_id": a, "currency": c, "amount": amount}
                for a, c, amount in lines
            ]
        )
    )


_BALANCE_IMMEDIATE = "ledger_balance_checked_per_statement"


async def check_balance_per_statement(session: AsyncSession) -> None:
    """Check entries balance at the end of each statement from now on in this transaction.

    The service writes an entry's lines in one statement, so the check passes there and a bad
    entry fails its own event (its savepoint) instead of the whole batch at commit. Anyone
    else's transaction keeps the deferred, commit-time check.
    """
    if not session.info.get(_BALANCE_IMMEDIATE):
        await session.execute(text("SET CONSTRAINTS journal_lines_balanced IMMEDIATE"))
        session.info[_BALANCE_IMMEDIATE] = True


# --- per-payment transactions ------------------------------------------------------------------


async def lock_transaction(session: AsyncSession, payment_id: uuid.UUID) -> Any:
    result = await session.execute(
        select(transactions).where(transactions.c.id == payment_id).with_for_update()
    )
    return result.first()


async def create_transaction(session: AsyncSession, **values: Any) -> Any:
    """The payment's row, locked; inserted first if new (concurrent consumers agree on one)."""
    row = await lock_transaction(session, values["id"])
    if row is not None:
        return row
    result = await session.execute(
        pg_insert(transactions)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(*transactions.c)
    )
    row = result.first()
    # None: another consumer inserted it meanwhile; wait for its lock like any later event.
    return row if row is not None else await lock_transaction(session, values["id"])


async def update_transaction(
    session: AsyncSession, payment_id: uuid.UUID, *, last_event_at: datetime, **values: Any
) -> None:
    await session.execute(
        transactions.update()
        .where(transactions.c.id == payment_id)
        .values(
            **values,
            last_event_at=func.greatest(transactions.c.last_event_at, last_event_at),
            version=func.nextval("transactions_version_seq"),
            updated_at=func.now(),
        )
    )


# --- refunds -----------------------------------------------------------------------------------


async def record_refund(
    session: AsyncSession,
    *,
    refund_id: uuid.UUID,
    payment_id: uuid.UUID,
    amount: int,
    status: str,
    allowed_from: set[str],
) -> None:
    """Insert the refund, or move it to `status` if it is in one of `allowed_from`."""
    stmt = pg_insert(refunds).values(
        id=refund_id, payment_id=payment_id, amount=amount, status=status
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"status": status, "updated_at": func.now()},
        where=refunds.c.status.in_(allowed_from),
    )
    await session.execute(stmt)


async def succeeded_refunds_total(session: AsyncSession, payment_id: uuid.UUID) -> int:
    result = await session.execute(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.payment_id == payment_id, refunds.c.status == "succeeded"
        )
    )
    return int(result.scalar_one())
