"""Request and response bodies of admin-service (`ConfigRead` is shared: `paygate_common.internal`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paygate_common.internal.config import ConfigRead
from paygate_common.text import Description


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="The new value; validated against the key's JSON Schema")
    reason: Description | None = None


class ConfigRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version whose value becomes current again")
    reason: Description | None = None


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
