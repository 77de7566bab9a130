"""Fixtures for the Postman tests: the helpers on sys.path, and newman from the lock file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Test folders are not packages (importlib mode); the helpers module has a unique name instead.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from postman_support import ROOT


@pytest.fixture(scope="session")
def newman_bin() -> Path:
    """`node_modules/.bin/newman` at the version package-lock.json pins (`npm ci` when missing)."""
    binary = ROOT / "node_modules" / ".bin" / "newman"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install newman (Node 20 with npm)")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci failed:\n{result.stdout}\n{result.stderr}")
    return binary
