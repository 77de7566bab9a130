"""Alembic environment: migrate the `notifications` schema with the shared helper."""

from notification_service.settings import Settings
from notification_service.store.tables import metadata
from paygate_common.migrations import run_env

run_env(Settings(), metadata)
