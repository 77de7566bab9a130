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


async def insert_entries(
    session: AsyncSession, entries: Sequence[dict[str, Any]]
) -> dict[uuid.UUID, int]:
    """Journal entries of a batch in one statement: event id -> entry id, the new ones only."""
    if not entries:
        return {}
    result = await session.execute(
        pg_insert(journal_entries)
        .values(list(entries))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(journal_entries.c.event_id, journal_entries.c.id)
    )
    return {row.event_id: int(row.id) for row in result}


# Every line of a batch's entries in one statement (the account totals trigger runs once).
_INSERT_LINES = text(
    """
    INSERT INTO journal_lines (entry_id, account_id, currency, amount)
    SELECT * FROM unnest(
        CAST(:entry_ids AS bigint[]), CAST(:account_ids AS bigint[]),
        CAST(:currencies AS text[]), CAST(:amounts AS bigint[])
    )
    """
)


async def insert_lines_of_entries(
    session: AsyncSession, lines: Sequence[tuple[int, int, str, int]]
) -> None:
    """(entry id, account id, currency, amount) rows of several entries, in one statement."""
    if not lines:
        return
    entry_ids, account_ids_, currencies, amounts = (list(col) for col in zip(*lines, strict=True))
    await session.execute(
        _INSERT_LINES,
        {
            "entry_ids": entry_ids,
            "account_ids": account_ids_,
            "currencies": currencies,
            "amounts": amounts,
        },
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


async def lock_transactions(
    session: AsyncSession, payment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The payments' rows that exist, locked in id order (two consumers never deadlock on them)."""
    if not payment_ids:
        return {}
    result = await session.execute(
        select(transactions)
        .where(transactions.c.id.in_(sorted(set(payment_ids))))
        .order_by(transactions.c.id)
        .with_for_update()
    )
    return {row.id: dict(row._mapping) for row in result}


async def insert_transactions(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> dict[uuid.UUID, dict[str, Any]]:
    """New payments' rows in one statement; returns (locked) the ones this call inserted."""
    if not rows:
        return {}
    result = await session.execute(
        pg_insert(transactions)
        .values(sorted(rows, key=lambda r: r["id"]))
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(*transactions.c)
    )
    return {row.id: dict(row._mapping) for row in result}


# A batch's final row states in one statement; version and last_event_at as `update_transaction`.
_UPDATE_TRANSACTIONS = text(
    """
    UPDATE transactions AS t SET
        order_id = u.order_id, status = u.status, phase = u.phase,
        amount_pending = u.amount_pending, amount_captured = u.amount_captured,
        amount_refunded = u.amount_refunded, fee = u.fee, fee_refunded = u.fee_refunded,
        fee_basis_points = u.fee_basis_points, fee_fixed = u.fee_fixed,
        fee_returned_on_refund = u.fee_returned_on_refund,
        reported_captured = u.reported_captured, reported_refunded = u.reported_refunded,
        last_event_at = greatest(t.last_event_at, u.last_event_at),
        version = nextval('transactions_version_seq'), updated_at = now()
    FROM unnest(
        CAST(:id AS uuid[]), CAST(:order_id AS uuid[]), CAST(:status AS text[]),
        CAST(:phase AS text[]), CAST(:amount_pending AS bigint[]),
        CAST(:amount_captured AS bigint[]), CAST(:amount_refunded AS bigint[]),
        CAST(:fee AS bigint[]), CAST(:fee_refunded AS bigint[]),
        CAST(:fee_basis_points AS integer[]), CAST(:fee_fixed AS bigint[]),
        CAST(:fee_returned_on_refund AS boolean[]), CAST(:reported_captured AS bigint[]),
        CAST(:reported_refunded AS bigint[]), CAST(:last_event_at AS timestamptz[])
    ) AS u(
        id, order_id, status, phase, amount_pending, amount_captured, amount_refunded, fee,
        fee_refunded, fee_basis_points, fee_fixed, fee_returned_on_refund, reported_captured,
        reported_refunded, last_event_at
    )
    WHERE t.id = u.id
    """
)
_UPDATED_COLUMNS = (
    "id",
    "order_id",
    "status",
    "phase",
    "amount_pending",
    "amount_captured",
    "amount_refunded",
    "fee",
    "fee_refunded",
    "fee_basis_points",
    "fee_fixed",
    "fee_returned_on_refund",
    "reported_captured",
    "reported_refunded",
)


async def update_transactions(
    session: AsyncSession, rows: Sequence[tuple[dict[str, Any], datetime]]
) -> None:
    """Write the rows' mutable columns as given (locked rows: the caller's values are the truth)."""
    if not rows:
        return
    params: dict[str, list[Any]] = {
        name: [row[name] for row, _ in rows] for name in _UPDATED_COLUMNS
    }
    params["last_event_at"] = [last_event_at for _, last_event_at in rows]
    await session.execute(_UPDATE_TRANSACTIONS, params)


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


async def succeeded_refunds_totals(
    session: AsyncSession, payment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """`succeeded_refunds_total` of several payments in one query (absent: no refund)."""
    if not payment_ids:
        return {}
    result = await session.execute(
        select(refunds.c.payment_id, func.sum(refunds.c.amount))
        .where(refunds.c.payment_id.in_(sorted(set(payment_ids))), refunds.c.status == "succeeded")
        .group_by(refunds.c.payment_id)
    )
    return {payment_id: int(total) for payment_id, total in result}


async def succeeded_refunds_total(session: AsyncSession, payment_id: uuid.UUID) -> int:
    result = await session.execute(
        select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
            refunds.c.payment_id == payment_id, refunds.c.status == "succeeded"
        )
    )
    return int(result.scalar_one())
