"""Root conftest: the devstack fixtures (real PostgreSQL, Redis, Kafka, Stripe, SMTP) everywhere."""

import contextlib
import importlib
from typing import Any

import pytest

pytest_plugins = ["paygate_devstack.pytest_plugin"]

# With --import-mode=importlib a tests folder without __init__.py is imported as
# "<folder>.tests.conftest", and pytest makes a stand-in module for "<folder>". Where the
# folder is named like its package (gateway/), that stand-in would hide the real package;
# importing the real one first keeps it in sys.modules. Test folders must therefore NOT
# have an __init__.py (two of them would both be the package "tests").
for _package in ("gateway",):
    with contextlib.suppress(ImportError):
        importlib.import_module(_package)

# A parallel run (`make test`: pytest-xdist `--dist loadscope`, with the scheduler below) hands
# each worker whole work units: one test module each, except the end-to-end modules on the suite
# of services that tests/e2e/conftest.py starts once per worker (`suite`), which are one unit so
# it starts once. (xdist's own `loadgroup` cannot be used: it renames items through
# `Item._nodeid`, which pytest 9.2 no longer reads.)
E2E_SUITE_GROUP = "e2e-suite"
# tests/e2e modules that bring a stack of their own instead of `suite`
E2E_OWN_STACK = ("tests/e2e/test_docs.py", "tests/e2e/test_launcher.py")
# The longest units first (minutes, measured on the loaded 2-core box): a worker that picks a
# long unit last would leave the other idle. Units not named here follow in collection order.
LONGEST_FIRST = (
    E2E_SUITE_GROUP,
    "tests/e2e/test_docs.py",
    "tests/postman/test_newman.py",
    "tests/e2e/test_launcher.py",
)


def work_unit(nodeid: str) -> str:
    """The work unit of a test: its module, or the e2e suite's unit."""
    module = nodeid.split("::", 1)[0]
    if module.startswith("tests/e2e/") and module not in E2E_OWN_STACK:
        return E2E_SUITE_GROUP
    return module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` schedules by `work_unit` instead of by module or class."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end and slow tests may spend minutes starting a whole stack on a busy 2-core box
    (the first test of a module pays for its fixtures): they get 10 minutes, the rest the
    default. Their own waits are bounded; this is only the backstop against a hang."""
    for item in items:
        if (item.get_closest_marker("e2e") or item.get_closest_marker("slow")) and not (
            item.get_closest_marker("timeout")
        ):
            item.add_marker(pytest.mark.timeout(600))
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the work queue's
        rank = {unit: n for n, unit in enumerate(LONGEST_FIRST)}
        # stable: a unit's tests keep their order, so module and package fixtures set up once
        items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))
