"""Fixtures: admin-service in process on real PostgreSQL and Kafka, with tokens it trusts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_service.main import create_app
from admin_service.settings import Settings
from paygate_devstack import TOPICS
from paygate_devstack.components import Kafka
from paygate_devstack.process import free_port
from paygate_devstack.testkit import TokenMint, app_client, migrated_database


@pytest.fixture(scope="package")
def admin_broker(devstack_dir: Path) -> Iterator[Kafka]:
    """A broker of admin-service's tests' own: the configuration they publish (fees, limits)
    must never reach another test's transaction-service on the session's broker."""
    broker = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka-admin.log", topics=TOPICS)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
async def admin_database(postgres: Any) -> str:
    return await migrated_database(postgres, "admin")


@pytest.fixture(scope="module")
async def admin(
    admin_database: str, admin_broker: Kafka, redis_server: Any, token_mint: TokenMint
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        database_url=admin_database,
        kafka_bootstrap_servers=admin_broker.bootstrap,
        redis_url=redis_server.url,
        log_json=False,
        environment="test",
    )
    async with app_client(create_app(settings), mint=token_mint) as pair:
        yield pair
