"""Alembic environment of exchange-rate-service: migrates the `rates` schema."""

from exchange_rate_service.settings import Settings
from exchange_rate_service.store.tables import metadata
from paygate_common.migrations import run_env

run_env(Settings(), metadata)
