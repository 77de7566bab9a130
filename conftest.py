"""Root conftest: the devstack fixtures (real PostgreSQL, Redis, Kafka, Stripe, SMTP) everywhere."""

import contextlib
import importlib

pytest_plugins = ["paygate_devstack.pytest_plugin"]

# With --import-mode=importlib a tests folder without __init__.py is imported as
# "<folder>.tests.conftest", and pytest makes a stand-in module for "<folder>". Where the
# folder is named like its package (gateway/), that stand-in would hide the real package;
# importing the real one first keeps it in sys.modules. Test folders must therefore NOT
# have an __init__.py (two of them would both be the package "tests").
for _package in ("gateway",):
    with contextlib.suppress(ImportError):
        importlib.import_module(_package)


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    """End-to-end and slow tests may spend minutes starting a whole stack on a busy 2-core box
    (the first test of a module pays for its fixtures): they get 10 minutes, the rest the
    default. Their own waits are bounded; this is only the backstop against a hang."""
    import pytest

    for item in items:
        if (item.get_closest_marker("e2e") or item.get_closest_marker("slow")) and not (  # type: ignore[attr-defined]
            item.get_closest_marker("timeout")  # type: ignore[attr-defined]
        ):
            item.add_marker(pytest.mark.timeout(600))  # type: ignore[attr-defined]
