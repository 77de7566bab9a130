"""Fixtures: admin-service in process on real PostgreSQL and Kafka, with tokens it trusts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_service.main import create_app
from admin_service.settings import Settings
from paygate_devstack.testkit import TokenMint, app_client, migrated_database


@pytest.fixture(scope="module")
async def admin_database(postgres: Any) -> str:
    return await migrated_database(postgres, "admin")


@pytest.fixture(scope="module")
async def admin(
    admin_database: str, kafka_broker: Any, redis_server: Any, token_mint: TokenMint
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        database_url=admin_database,
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        redis_url=redis_server.url,
        log_json=False,
        environment="test",
    )
    async with app_client(create_app(settings), mint=token_mint) as pair:
        yield pair
