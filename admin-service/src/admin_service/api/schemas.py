"""Request and response bodies of admin-service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from admin_service.store.config import ConfigVersion
from paygate_common.text import Description


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="The new value; validated against the key's JSON Schema")
    reason: Description | None = None


class ConfigRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version whose value becomes current again")
    reason: Description | None = None


class ConfigRead(BaseModel):
    key: str
    version: int = Field(description="0 = never set: `value` is the built-in default")
    value: Any
    actor_id: uuid.UUID | None = None
    reason: str | None = None
    rolled_back_to: int | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: ConfigVersion) -> ConfigRead:
        return cls(
            key=row.key,
            version=row.version,
            value=row.value,
            actor_id=row.actor_id,
            reason=row.reason,
            rolled_back_to=row.rolled_back_to,
            created_at=row.created_at,
        )


class ConfigDetailRead(ConfigRead):
    json_schema: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class ConfigPage(BaseModel):
    items: list[ConfigRead]
    next_cursor: str | None = None


class HealthRead(BaseModel):
    status: str = Field(description="ok | degraded | down")
    services: list[dict[str, Any]]
    consumers: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
