"""Alembic environment of order-service: migrates the `orders` schema."""

from order_service.settings import Settings
from order_service.store.tables import metadata
from paygate_common.migrations import run_env

run_env(Settings(), metadata)
