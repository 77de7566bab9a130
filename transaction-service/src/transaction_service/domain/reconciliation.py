"""Reconciliation: the ledger held against payment-service's reported totals and against itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from transaction_service.store import history
from transaction_service.store import reconciliation as store


@dataclass
class ReconciliationReport:
    """Every difference found; `ok` when there is none."""

    payments: list[dict[str, Any]] = field(default_factory=list)
    unbalanced_entries: list[dict[str, Any]] = field(default_factory=list)
    account_drift: list[dict[str, Any]] = field(default_factory=list)
    trial_balance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.payments
            or self.unbalanced_entries
            or self.account_drift
            or any(t["debits"] != t["credits"] for t in self.trial_balance)
        )


async def reconcile(*, session: AsyncSession) -> ReconciliationReport:
    """Compare, per payment, the captured and refunded totals the journal lines add up to with
    the highest totals payment-service reported in its `payment.event`s, and check the books."""
    return ReconciliationReport(
        payments=await store.rows(session, store.PAYMENT_DIFFERENCES),
        unbalanced_entries=await store.rows(session, store.UNBALANCED_ENTRIES),
        account_drift=await store.rows(session, store.ACCOUNT_DRIFT),
        trial_balance=[store.plain(r) for r in await history.trial_balance(session)],
    )
