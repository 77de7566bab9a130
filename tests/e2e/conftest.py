"""Fixtures for the end-to-end tests: the whole suite as real processes behind the gateway."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from paygate_devstack import TOPICS
from paygate_devstack.components import Kafka
from paygate_devstack.process import free_port
from paygate_devstack.pytest_plugin import PaygateStack, ServiceProcess

# Test folders are not packages (importlib mode); the helpers module has a unique name instead.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from admin_support import ADMIN_ENV, suite_service
from e2e_support import SERVICES, SUITE_ENV, Suite

from paygate_devstack.browser import RecordedPage, browser_page


@pytest.fixture(scope="package")
def suite(paygate_stack: PaygateStack, devstack_dir: Path) -> Iterator[Suite]:
    # Isolated from the in-process service tests that ran before in this session: a broker of
    # its own (their leftover order.create events must not be charged here, and the services'
    # consumer groups start fresh), its own database, and its own Redis database (their failed
    # sign-ins from 127.0.0.1 must not throttle these customers).
    kafka = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka-e2e.log", topics=TOPICS)
    kafka.start()
    env = {
        **SUITE_ENV,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DATABASE_URL": paygate_stack.postgres.create_database(),
        "REDIS_URL": paygate_stack.redis.url.rsplit("/", 1)[0] + "/1",
    }
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            procs[name] = paygate_stack.start_service(name, env)
        yield Suite(paygate_stack, procs, kafka)
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)
        kafka.resume()
        kafka.stop()


@pytest.fixture
async def http(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=suite.api, timeout=15) as client:
        yield client


@pytest.fixture(scope="package")
def audit_service(suite: Suite) -> Iterator[ServiceProcess]:
    """audit-service on the suite, started once for every module that reads the trail."""
    with suite_service(suite, "audit") as proc:
        yield proc


@pytest.fixture(scope="package")
def services(suite: Suite, audit_service: ServiceProcess) -> Iterator[dict[str, ServiceProcess]]:
    """audit-service and admin-service on the suite, started once for the operator console's and
    the merchant dashboard's modules (the gateway routes `/admin` and `/dashboard` there)."""
    with suite_service(suite, "admin", ADMIN_ENV) as admin:
        yield {"audit": audit_service, "admin": admin}


@pytest.fixture
async def page(shots: Path) -> AsyncIterator[RecordedPage]:
    """A fresh Chromium page for the test; screenshots and records go to the module's `shots`."""
    async with browser_page(shots) as recorded:
        yield recorded
