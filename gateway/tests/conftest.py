"""Gateway test fixtures; they live in `gateway_support` so test modules can import the helpers."""

import sys
from pathlib import Path

# Test folders are not packages (importlib mode): make the uniquely named helper module importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_support import (  # noqa: F401  (fixtures are found by name in this module)
    gateway,
    make_gateway,
    signing_key,
    state,
    upstreams,
)
