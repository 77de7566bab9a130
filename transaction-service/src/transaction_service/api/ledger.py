"""`/admin/ledger`: the operator's view of the books (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from paygate_common.auth import AdminPrincipal
from paygate_common.db import SessionDep
from paygate_common.errors import ADMIN_PROBLEMS
from transaction_service.api.schemas import AppliedConfigRead, TrialBalanceRead
from transaction_service.store import config as config_store
from transaction_service.store import history as store

router = APIRouter(prefix="/admin/ledger", tags=["ledger"])


@router.get(
    "/trial-balance",
    response_model=TrialBalanceRead,
    summary="Total debits and credits per currency over every journal line (always equal)",
    responses=ADMIN_PROBLEMS,
)
async def trial_balance(_: AdminPrincipal, session: SessionDep) -> TrialBalanceRead:
    rows = await store.trial_balance(session)
    return TrialBalanceRead.model_validate({"items": [dict(r._mapping) for r in rows]})


@router.get(
    "/config",
    response_model=AppliedConfigRead,
    summary="The configuration the ledger applies now (from admin-service's config.changed)",
    responses=ADMIN_PROBLEMS,
)
async def applied_config(_: AdminPrincipal, session: SessionDep) -> AppliedConfigRead:
    rows = await config_store.applied(session)
    return AppliedConfigRead.model_validate({"items": [dict(r._mapping) for r in rows]})
