"""The layers hold: `domain/` states rules on the caller's session and never opens or commits one."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[1] / "src" / "transaction_service" / "domain"
FORBIDDEN_NAMES = {"unit_of_work", "async_sessionmaker", "create_sessionmaker", "sessionmaker"}
FORBIDDEN_CALLS = {"commit", "begin", "rollback"}


def test_no_domain_module_opens_or_commits_a_unit_of_work() -> None:
    offences: list[str] = []
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) > 5  # the folder is really there
    for module in modules:
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.alias):
                name = node.name.rsplit(".", 1)[-1]
            elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
                offences.append(f"{module.name}:{node.lineno} .{node.attr}")
            if name in FORBIDDEN_NAMES:
                offences.append(f"{module.name}:{node.lineno} {name}")
    assert offences == []
