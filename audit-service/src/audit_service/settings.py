"""audit-service settings: `AUDIT_SERVICE_*` first, then the suite-wide unprefixed variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from paygate_common.settings import DEV_SECRET_MARKER, ServiceSettings

DEFAULT_CHECKPOINT_KEY = f"{DEV_SECRET_MARKER}-audit-checkpoint-key-change-me-0123456789"


class Settings(ServiceSettings):
    """Everything audit-service reads from the environment."""

    registry_name: ClassVar[str] = "audit"

    # HMAC-SHA256 key of the signed checkpoints; the production check refuses the dev default.
    checkpoint_key: SecretStr = SecretStr(DEFAULT_CHECKPOINT_KEY)
    checkpoint_interval_seconds: float = Field(default=60.0, gt=0)

    # The database role the service acts as (`SET ROLE` on every connection): the migration
    # grants it SELECT and INSERT on the audit tables and nothing else, so even the service
    # cannot rewrite history. Empty = act as the connecting user (which must then be such a
    # role itself, never the tables' owner).
    db_role: str = Field(default="paygate_audit_writer", pattern=r"^[a-z_][a-z0-9_]{0,62}$|^$")

    # Off for a replica that only serves the API (and for tests that append directly).
    consumer_enabled: bool = True
    # Events per consumed batch (one transaction, one chain lock per batch).
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_max_attempts: int = Field(default=5, ge=1)

    verify_page_size: int = Field(default=1000, ge=10, le=50_000)
    export_page_size: int = Field(default=1000, ge=10, le=50_000)
    list_default_limit: int = Field(default=50, ge=1, le=500)
    list_max_limit: int = Field(default=500, ge=1, le=5000)

    # Retention: records older than this are exported to `archive_dir` with a signed manifest
    # covering their range. Nothing is ever deleted by the service.
    retention_days: int = Field(default=400, ge=1)
    archive_interval_seconds: float = Field(default=3600.0, gt=0)
    archive_batch_size: int = Field(default=10_000, ge=1)
    archive_dir: str = ""  # default: <PAYGATE_STATE_DIR>/audit-archive

    def archive_path(self) -> str:
        return self.archive_dir or f"{self.paygate_state_dir}/audit-archive"
