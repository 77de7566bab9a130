"""`/admin/config`: versioned, schema-validated configuration; `/internal/config` for services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from admin_service.api.schemas import (
    ConfigDetailRead,
    ConfigPage,
    ConfigRollback,
    ConfigUpdate,
)
from admin_service.domain import config as domain
from admin_service.store import config as store
from paygate_common.audit import Actor
from paygate_common.auth import AdminPrincipal, ServiceCaller
from paygate_common.config import CONFIG_KEYS
from paygate_common.db import SessionDep
from paygate_common.errors import ADMIN_PROBLEMS, SERVICE_PROBLEMS, problem
from paygate_common.internal.config import ConfigRead
from paygate_common.pagination import LimitQuery

router = APIRouter(prefix="/admin/config", tags=["configuration"])
internal = APIRouter(prefix="/internal/config", tags=["internal"])

KeyPath = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9._-]*$")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    **ADMIN_PROBLEMS,
    404: problem("Unknown key or version (`config_key_unknown`, `config_version_not_found`)"),
}


def _read(key: str, row: store.ConfigVersion | None) -> ConfigRead:
    if row is None:
        return ConfigRead(key=key, version=0, value=domain.default_value(key))
    return ConfigRead.model_validate(row)


@router.get("", response_model=ConfigPage, summary="Every key's current value", responses=PROBLEMS)
async def list_config(principal: AdminPrincipal, session: SessionDep) -> ConfigPage:
    current = {row.key: row for row in await store.latest_of_each(session)}
    return ConfigPage(items=[_read(k, current.get(k)) for k in sorted(CONFIG_KEYS)])


@router.get(
    "/{key}",
    response_model=ConfigDetailRead,
    response_model_by_alias=True,
    summary="A key's current value and its JSON Schema",
    responses=PROBLEMS,
)
async def get_config(
    key: KeyPath, principal: AdminPrincipal, session: SessionDep
) -> ConfigDetailRead:
    row = await domain.current_value(session=session, key=key)
    return ConfigDetailRead(**_read(key, row).model_dump(), schema=domain.schema_of(key))


@router.put(
    "/{key}",
    response_model=ConfigRead,
    summary="Save a new version (validated; announced on `config.changed`; audited)",
    responses={
        **PROBLEMS,
        422: problem("The value breaks the key's schema (`config_invalid`, with `errors`)"),
    },
)
async def put_config(
    request: Request,
    key: KeyPath,
    body: ConfigUpdate,
    principal: AdminPrincipal,
    session: SessionDep,
) -> ConfigRead:
    saved = await domain.set_value(
        session=session,
        key=key,
        value=body.value,
        actor=Actor.of(request, principal),
        reason=body.reason,
    )
    return ConfigRead.model_validate(saved)


@router.get(
    "/{key}/history",
    response_model=ConfigPage,
    summary="Every version of a key, newest first",
    responses=PROBLEMS,
)
async def config_history(
    key: KeyPath,
    principal: AdminPrincipal,
    session: SessionDep,
    limit: LimitQuery = 20,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,9}$", description="`next_cursor` of the previous page")
    ] = None,
) -> ConfigPage:
    domain.known_key(key)
    rows = await store.history(
        session, key, limit=limit + 1, before=int(cursor) if cursor else None
    )
    items = rows[:limit]
    next_cursor = str(items[-1].version) if len(rows) > limit else None
    return ConfigPage(items=[ConfigRead.model_validate(r) for r in items], next_cursor=next_cursor)


@router.post(
    "/{key}/rollback",
    response_model=ConfigRead,
    summary="Make an earlier version's value current again (as a new version)",
    responses=PROBLEMS,
)
async def rollback_config(
    request: Request,
    key: KeyPath,
    body: ConfigRollback,
    principal: AdminPrincipal,
    session: SessionDep,
) -> ConfigRead:
    saved = await domain.roll_back(
        session=session,
        key=key,
        to_version=body.version,
        actor=Actor.of(request, principal),
        reason=body.reason,
    )
    return ConfigRead.model_validate(saved)


@internal.get(
    "/{key}",
    response_model=ConfigRead,
    summary="Current value for a service at start-up",
    responses={**SERVICE_PROBLEMS, 404: problem("Never set (`config_version_not_found`)")},
)
async def internal_config(key: KeyPath, caller: ServiceCaller, session: SessionDep) -> ConfigRead:
    row = await domain.current_value(session=session, key=key)
    if row is None:
        from admin_service.domain.errors import ConfigVersionNotFound

        raise ConfigVersionNotFound(f"{key} was never set")
    return ConfigRead.model_validate(row)
