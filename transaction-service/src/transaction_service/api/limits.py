"""`/internal/limits/reservations`: services reserve a charge against the user's limits."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse

from paygate_common.auth import ServiceCaller
from paygate_common.db import SessionDep
from paygate_common.deps import SettingsDep
from paygate_common.errors import SERVICE_PROBLEMS, problem
from transaction_service.api.schemas import ReservationCreate, ReservationRead
from transaction_service.domain import limits as domain
from transaction_service.domain.errors import ReservationNotFound
from transaction_service.settings import Settings

router = APIRouter(prefix="/internal/limits", tags=["internal"])


def _read(reservation: domain.Reservation) -> ReservationRead:
    return ReservationRead(
        reference_id=reservation.reference_id,
        user_id=reservation.user_id,
        amount=reservation.amount,
        currency=reservation.currency,
        status=reservation.status,
        created_at=reservation.created_at,
    )


def _config_cache(request: Request) -> domain.LimitsConfigCache:
    """This process's copy of the limits config (re-read when the stored version moves on)."""
    cache: domain.LimitsConfigCache | None = getattr(request.app.state, "limits_config", None)
    if cache is None:
        cache = request.app.state.limits_config = domain.LimitsConfigCache()
    return cache


@router.post(
    "/reservations",
    status_code=201,
    response_model=ReservationRead,
    summary="Reserve an amount against the user's limits (idempotent by reference_id)",
    responses={
        200: {"description": "The same reservation was made before (replay)"},
        **SERVICE_PROBLEMS,
        409: problem("The reference holds a different reservation"),
        422: problem("`limit_exceeded` (with `limit`, `maximum`, `remaining`) or bad body"),
    },
)
async def create_reservation(
    request: Request,
    payload: ReservationCreate,
    _: ServiceCaller,
    session: SessionDep,
    settings: SettingsDep[Settings],
) -> JSONResponse:
    reservation = await domain.reserve(
        session=session,
        settings=settings,
        reference_id=payload.reference_id,
        user_id=payload.user_id,
        amount=payload.amount,
        currency=payload.currency,
        config=_config_cache(request),
    )
    return JSONResponse(
        _read(reservation).model_dump(mode="json"), status_code=201 if reservation.created else 200
    )


@router.delete(
    "/reservations/{reference_id}",
    response_model=ReservationRead,
    summary="Release a reservation now (a charge that will not happen)",
    responses={404: problem("No reservation for this reference")},
)
async def release_reservation(
    _: ServiceCaller,
    session: SessionDep,
    reference_id: Annotated[str, Path(description="The order or payment id")],
) -> ReservationRead:
    try:
        parsed = uuid.UUID(reference_id)
    except ValueError:
        raise ReservationNotFound("No such reservation") from None
    return _read(await domain.release_reference(session=session, reference_id=parsed))
