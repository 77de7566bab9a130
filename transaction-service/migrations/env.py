"""Alembic environment of transaction-service: migrates the `transactions` schema."""

from paygate_common.migrations import run_env
from transaction_service.settings import Settings
from transaction_service.store.tables import metadata

run_env(Settings(), metadata)
