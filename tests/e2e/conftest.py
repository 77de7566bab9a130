"""Fixtures for the end-to-end tests: the whole suite as real processes behind the gateway."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from paygate_devstack.pytest_plugin import PaygateStack

# Test folders are not packages (importlib mode); the helpers module has a unique name instead.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import SERVICES, SUITE_ENV, Suite


@pytest.fixture(scope="package")
def suite(paygate_stack: PaygateStack) -> Iterator[Suite]:
    procs = {name: paygate_stack.start_service(name, SUITE_ENV) for name in SERVICES}
    yield Suite(paygate_stack, procs)
    for proc in reversed(list(procs.values())):
        proc.stop()
        if proc in paygate_stack.started:
            paygate_stack.started.remove(proc)


@pytest.fixture
async def http(suite: Suite) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=suite.api, timeout=15) as client:
        yield client
