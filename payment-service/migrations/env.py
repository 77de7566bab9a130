"""Alembic environment of payment-service: migrates the `payments` schema."""

from paygate_common.migrations import run_env
from payment_service.settings import Settings
from payment_service.store.tables import metadata

run_env(Settings(), metadata)
