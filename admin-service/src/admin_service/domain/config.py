"""Configuration rules: every change is a new, validated version, announced and audited."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from admin_service.domain.errors import ConfigInvalid, ConfigVersionNotFound, UnknownConfigKey
from admin_service.store import config as store
from admin_service.store.config import ConfigVersion
from paygate_common.audit import Actor, record_audit
from paygate_common.config import CONFIG_KEYS, config_model
from paygate_common.events import CONFIG_CHANGED, ConfigChanged, new_event
from paygate_common.outbox import add_event

PRODUCER = "admin-service"


def known_key(key: str) -> str:
    if key not in CONFIG_KEYS:
        raise UnknownConfigKey(f"Known keys: {', '.join(sorted(CONFIG_KEYS))}")
    return key


def default_value(key: str) -> Any:
    return config_model(key)().model_dump(mode="json")


def schema_of(key: str) -> dict[str, Any]:
    return config_model(key).model_json_schema()


def _validated(key: str, value: Any) -> Any:
    try:
        parsed = config_model(key).model_validate(value)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ConfigInvalid(f"{len(errors)} schema error(s) in {key}", errors=errors) from None
    # stored normalised, so every reader sees the same document the model produced
    return parsed.model_dump(mode="json")


async def current_value(*, session: AsyncSession, key: str) -> ConfigVersion | None:
    return await store.current(session, known_key(key))


async def set_value(
    *,
    session: AsyncSession,
    key: str,
    value: Any,
    actor: Actor,
    reason: str | None,
    rolled_back_to: int | None = None,
) -> ConfigVersion:
    """Save `value` as the key's next version; `config.changed` and `audit.event` go with it."""
    known_key(key)
    normalised = _validated(key, value)
    await store.lock_key(session, key)
    latest = await store.current(session, key)
    saved = await store.insert(
        session,
        key=key,
        version=(latest.version if latest else 0) + 1,
        value=normalised,
        actor_id=actor.actor_id,
        reason=reason,
        rolled_back_to=rolled_back_to,
    )
    change = ConfigChanged(
        key=key,
        config_version=saved.version,
        value=normalised,
        actor_id=actor.actor_id,
        reason=reason,
    )
    await add_event(
        session, new_event(change, producer=PRODUCER, aggregate_id=key), topic=CONFIG_CHANGED
    )
    await record_audit(
        session,
        producer=PRODUCER,
        action="config.changed",
        entity_type="config",
        entity_id=key,
        actor=actor,
        details={"version": saved.version, "rolled_back_to": rolled_back_to, "reason": reason},
    )
    return saved


async def roll_back(
    *, session: AsyncSession, key: str, to_version: int, actor: Actor, reason: str | None
) -> ConfigVersion:
    """A new version carrying an old version's value (history is never rewritten)."""
    known_key(key)
    old = await store.version(session, key, to_version)
    if old is None:
        raise ConfigVersionNotFound(f"{key} has no version {to_version}")
    return await set_value(
        session=session,
        key=key,
        value=old.value,
        actor=actor,
        reason=reason or f"rollback to version {to_version}",
        rolled_back_to=to_version,
    )
