"""Root conftest: the devstack fixtures (real PostgreSQL, Redis, Kafka, Stripe, SMTP) everywhere."""

import contextlib
import importlib

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

# A parallel run (`make test`: pytest-xdist `--dist loadgroup`) hands each worker whole work
# units: one test module each, except the end-to-end modules on the suite of services that
# tests/e2e/conftest.py starts once per worker (`suite`), which are one unit so it starts once.
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


def work_unit(item: pytest.Item) -> str:
    """The xdist group of a test: its module, or the e2e suite's group."""
    module = item.nodeid.split("::", 1)[0]
    if module.startswith("tests/e2e/") and module not in E2E_OWN_STACK:
        return E2E_SUITE_GROUP
    return module


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook, in the worker)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end and slow tests may spend minutes starting a whole stack on a busy 2-core box
    (the first test of a module pays for its fixtures): they get 10 minutes, the rest the
    default. Their own waits are bounded; this is only the backstop against a hang."""
    for item in items:
        if (item.get_closest_marker("e2e") or item.get_closest_marker("slow")) and not (
            item.get_closest_marker("timeout")
        ):
            item.add_marker(pytest.mark.timeout(600))
    if config.getoption("dist", "no") != "loadgroup":
        return
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(work_unit(item)))
    rank = {unit: n for n, unit in enumerate(LONGEST_FIRST)}
    # stable: a unit's tests keep their order, so module and package fixtures set up once
    items.sort(key=lambda item: rank.get(work_unit(item), len(rank)))
