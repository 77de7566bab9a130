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
