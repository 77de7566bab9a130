"""`/transactions` and `/balance`: the caller's history, one transaction, balances, analytics."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from paygate_common.auth import CurrentPrincipal, Principal
from paygate_common.db import SessionDep
from paygate_common.deps import SettingsDep
from paygate_common.errors import problem
from paygate_common.money import Currency
from paygate_common.pagination import IsoDateTime, decode_cursor, split_page
from transaction_service.api.schemas import (
    BalanceRead,
    LedgerLineRead,
    SummaryRead,
    TransactionDetailRead,
    TransactionPageRead,
    TransactionRead,
)
from transaction_service.domain import history as domain
from transaction_service.domain.errors import TransactionNotFound
from transaction_service.settings import Settings
from transaction_service.store import history as store

router = APIRouter(tags=["transactions"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: problem("No valid access token (problem+json)"),
    404: problem("No such transaction, or not the caller's (`transaction_not_found`)"),
    422: problem("Bad filter, limit or cursor (problem+json)"),
}
PaymentStatusName = Literal[
    "processing",
    "pending",
    "requires_action",
    "requires_capture",
    "succeeded",
    "failed",
    "cancelled",
    "partially_refunded",
    "refunded",
]


def _subject(principal: Principal, user_id: uuid.UUID | None) -> uuid.UUID:
    """Whose data: the caller's own; an admin may name another user."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.is_admin:
        raise TransactionNotFound("No such user's transactions")
    return user_id


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(
    "/transactions",
    response_model=TransactionPageRead,
    summary="The caller's transactions, newest first (Redis-cached)",
    responses=PROBLEMS,
)
async def list_transactions(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    status: PaymentStatusName | None = None,
    currency: Currency | None = None,
    created_from: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    created_to: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="admin only")] = None,
) -> Response:
    subject = _subject(principal, user_id)
    size = limit or settings.list_default_limit
    after = decode_cursor(cursor) if cursor else None

    async def build() -> Any:
        rows = await store.list_transactions(
            session,
            user_id=subject,
            limit=size + 1,
            after=after,
            status=status,
            currency=currency,
            created_from=created_from,
            created_to=created_to,
        )
        items, next_cursor = split_page(rows, size)
        page = TransactionPageRead(
            items=[TransactionRead.from_row(r) for r in items], next_cursor=next_cursor
        )
        return page.model_dump(mode="json")

    params = {
        "status": status,
        "currency": currency,
        "from": created_from.isoformat() if created_from else None,
        "to": created_to.isoformat() if created_to else None,
        "limit": size,
        "cursor": cursor,
    }
    return _json(
        await domain.cached_page(
            session=session,
            redis=request.app.state.redis,
            service=settings.service_name,
            ttl_seconds=settings.history_cache_ttl_seconds,
            user_id=subject,
            view="transactions",
            params=params,
            build=build,
        )
    )


@router.get(
    "/transactions/summary",
    response_model=SummaryRead,
    summary="Counts, volume, fees and refunds per day or month and currency",
    responses={401: PROBLEMS[401], 404: PROBLEMS[404], 422: PROBLEMS[422]},
)
async def transactions_summary(
    principal: CurrentPrincipal,
    session: SessionDep,
    period: Literal["day", "month"] = "day",
    currency: Currency | None = None,
    user_id: Annotated[
        uuid.UUID | None, Query(description="admin only; an admin without it sees every user")
    ] = None,
) -> SummaryRead:
    subject = user_id if principal.is_admin else _subject(principal, user_id)
    rows = await store.summary(session, user_id=subject, period=period, currency=currency)
    return SummaryRead.model_validate({"period": period, "items": [dict(r._mapping) for r in rows]})


@router.get(
    "/transactions/{payment_id}",
    response_model=TransactionDetailRead,
    summary="One transaction with its journal lines (owner or admin)",
    responses=PROBLEMS,
)
async def get_transaction(
    principal: CurrentPrincipal,
    session: SessionDep,
    payment_id: Annotated[str, Path(description="The payment's id (UUID)")],
) -> TransactionDetailRead:
    try:
        parsed = uuid.UUID(payment_id)
    except ValueError:
        raise TransactionNotFound("No such transaction") from None
    row = await domain.transaction_for(session=session, payment_id=parsed, principal=principal)
    lines = await store.entries_for_payment(session, parsed)
    return TransactionDetailRead(
        **TransactionRead.from_row(row).model_dump(),
        entries=[
            LedgerLineRead(
                entry_id=line.entry_id,
                description=line.description,
                posted_at=line.posted_at,
                account=f"{line.kind}:{line.owner}",
                currency=line.currency,
                debit=max(line.amount, 0),
                credit=max(-line.amount, 0),
            )
            for line in lines
        ],
    )


@router.get(
    "/balance",
    response_model=BalanceRead,
    summary="The caller's balance per currency: available and pending (Redis-cached)",
    responses={401: PROBLEMS[401], 404: PROBLEMS[404]},
)
async def get_balance(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep[Settings],
    user_id: Annotated[uuid.UUID | None, Query(description="admin only")] = None,
) -> Response:
    subject = _subject(principal, user_id)

    async def build() -> Any:
        rows = await store.balances(session, subject)
        return BalanceRead.model_validate({"items": [dict(r._mapping) for r in rows]}).model_dump(
            mode="json"
        )

    return _json(
        await domain.cached_page(
            session=session,
            redis=request.app.state.redis,
            service=settings.service_name,
            ttl_seconds=settings.history_cache_ttl_seconds,
            user_id=subject,
            view="balance",
            params={},
            build=build,
        )
    )
