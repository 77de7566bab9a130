"""admin-service's configuration answer as a type: what `/internal/config/{key}` serves and services load.

admin-service declares `ConfigRead` as the `response_model` of its internal route (and of its
`/admin/config` routes); `paygate_common.config.LiveConfig.load` and transaction-service's
start-up catch-up parse it with the same class, and test stand-ins build their answers from it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CONFIG_PATH = "/internal/config/{key}"


class ConfigRead(BaseModel):
    """One version of a configuration key (`version` 0: never set, `value` is the default)."""

    # read from admin-service's `ConfigVersion` rows as they are
    model_config = ConfigDict(from_attributes=True)

    key: str
    version: int = Field(ge=0, description="0 = never set: `value` is the built-in default")
    value: Any
    actor_id: uuid.UUID | None = None
    reason: str | None = None
    rolled_back_to: int | None = None
    created_at: datetime | None = None


__all__ = ["CONFIG_PATH", "ConfigRead"]
