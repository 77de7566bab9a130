"""Alembic environment of admin-service: migrates the `admin` schema."""

from admin_service.settings import Settings
from admin_service.store.tables import metadata
from paygate_common.migrations import run_env

run_env(Settings(), metadata)
