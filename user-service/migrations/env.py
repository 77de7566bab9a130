"""Alembic environment for user-service: the shared runner, pointed at the `users` schema."""

from paygate_common.migrations import run_env
from user_service.settings import Settings
from user_service.store.tables import metadata

run_env(Settings(), metadata)
