"""Alembic environment of audit-service: migrates the `audit` schema."""

from audit_service.settings import Settings
from audit_service.store.tables import metadata
from paygate_common.migrations import run_env

run_env(Settings(), metadata)
