"""Queries the reconciliation reads: ledger-derived totals per payment, and the books' checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Per payment, what its journal lines say next to what payment-service reported and what the
# transaction row holds. Only payments where something differs come back.
PAYMENT_DIFFERENCES = text(
    """
    WITH ledger AS (
        SELECT e.payment_id,
               coalesce(sum(l.amount) FILTER (WHERE a.kind = 'provider_clearing'), 0) AS captured,
               coalesce(-sum(l.amount) FILTER (WHERE a.kind = 'provider_refunds'), 0) AS refunded,
               coalesce(-sum(l.amount) FILTER (WHERE a.kind = 'platform_fees'), 0) AS fees,
               coalesce(sum(l.amount) FILTER (WHERE a.kind = 'provider_authorizations'), 0)
                   AS pending,
               coalesce(-sum(l.amount) FILTER (WHERE a.kind = 'merchant_available'), 0) AS net
        FROM journal_entries e
        JOIN journal_lines l ON l.entry_id = e.id
        JOIN ledger_accounts a ON a.id = l.account_id
        WHERE e.payment_id IS NOT NULL
        GROUP BY e.payment_id
    )
    SELECT t.id AS payment_id, t.user_id, t.currency,
           t.reported_captured, t.reported_refunded,
           coalesce(g.captured, 0) AS ledger_captured,
           coalesce(g.refunded, 0) AS ledger_refunded,
           coalesce(g.fees, 0) AS ledger_fees,
           coalesce(g.pending, 0) AS ledger_pending,
           coalesce(g.net, 0) AS ledger_net,
           t.amount_captured, t.amount_refunded, t.fee - t.fee_refunded AS fees, t.amount_pending
    FROM transactions t
    LEFT JOIN ledger g ON g.payment_id = t.id
    WHERE t.reported_captured <> coalesce(g.captured, 0)
       OR t.reported_refunded <> coalesce(g.refunded, 0)
       OR t.amount_captured <> coalesce(g.captured, 0)
       OR t.amount_refunded <> coalesce(g.refunded, 0)
       OR t.fee - t.fee_refunded <> coalesce(g.fees, 0)
       OR t.amount_pending <> coalesce(g.pending, 0)
       OR coalesce(g.net, 0) <> coalesce(g.captured, 0) - coalesce(g.refunded, 0)
                                - coalesce(g.fees, 0)
    ORDER BY t.created_at
    """
)

UNBALANCED_ENTRIES = text(
    "SELECT entry_id, currency, sum(amount) AS total FROM journal_lines "
    "GROUP BY entry_id, currency HAVING sum(amount) <> 0 ORDER BY entry_id"
)

ACCOUNT_DRIFT = text(
    """
    SELECT a.id, a.kind, a.owner, a.currency, a.debits_posted, a.credits_posted,
           coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0) AS line_debits,
           coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0) AS line_credits
    FROM ledger_accounts a LEFT JOIN journal_lines l ON l.account_id = a.id
    GROUP BY a.id
    HAVING a.debits_posted <> coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0)
        OR a.credits_posted <> coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0)
    ORDER BY a.id
    """
)


async def rows(session: AsyncSession, query: Any) -> list[dict[str, Any]]:
    return [plain(r) for r in await session.execute(query)]


def plain(row: Any) -> dict[str, Any]:
    """A row as a dict with str keys; sums of BIGINT (NUMERIC in PostgreSQL) as int."""
    return {str(k): int(v) if isinstance(v, Decimal) else v for k, v in row._mapping.items()}
