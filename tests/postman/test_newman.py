"""The Postman collection runs green in newman against a fresh stack of every implemented service."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from postman_support import (
    ROOT,
    build_collection,
    expected_runs,
    merged_openapi,
    routes_of,
)

from paygate_devstack import TOPICS
from paygate_devstack.components import Component, Kafka
from paygate_devstack.process import free_port
from paygate_devstack.pytest_plugin import PaygateStack, ServiceProcess
from paygate_devstack.services import implemented_services
from paygate_devstack.standins import provider_env, provider_standins

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN_EMAIL = "postman-admin@example.com"
ADMIN_PASSWORD = "a-postman-admin-passphrase-42"
STACK_ENV = {
    "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
    "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    # One client signs up, signs in several times and polls: no per-IP limit may refuse it.
    "GATEWAY_RATE_LIMIT_ANON": "100000/second",
    "GATEWAY_RATE_LIMIT_USER": "100000/second",
    "GATEWAY_RATE_LIMIT_AUTH": "100000/second",
    "NOTIFICATION_SERVICE_SENDER_POLL_INTERVAL_SECONDS": "0.2",
    # The run lasts seconds: sign the audit chain's head every second, not every minute, so
    # "Audit: the latest signed checkpoint" finds one (this run only; the default stays 60 s).
    "AUDIT_SERVICE_CHECKPOINT_INTERVAL_SECONDS": "1",
    "LOG_JSON": "true",
}


def start_order(names: list[str]) -> list[str]:
    """user first (everyone fetches its JWKS), the gateway last (it fetches every OpenAPI)."""
    rest = [n for n in names if n not in ("user", "gateway")]
    return [n for n in ("user",) if n in names] + rest + [n for n in ("gateway",) if n in names]


@pytest.fixture(scope="module")
def gateway(paygate_stack: PaygateStack, devstack_dir: Path) -> Iterator[str]:
    """Every implemented service behind the gateway, with a broker and database of their own
    (what earlier in-process tests left on the session's broker must not be charged here) and
    the PayPal and SSLCommerz stand-ins, as `make run` starts them."""
    # Services an earlier test left running hold the stack's reserved ports (tests/ has no
    # __init__.py, so tests/e2e's "package" fixture lives to the session's end): a service
    # started here would fail to bind and the old one would answer. Stop them first.
    paygate_stack.stop_services()
    logs = devstack_dir / "logs"
    kafka = Kafka(free_port(), log_path=logs / "kafka-postman.log", topics=TOPICS)
    kafka.start()
    standins: dict[str, Component] = provider_standins(devstack_dir / "postman", logs, {})
    procs: list[ServiceProcess] = []
    try:
        for standin in standins.values():
            standin.start()
        env = {
            **STACK_ENV,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "DATABASE_URL": paygate_stack.postgres.create_database(),
            "REDIS_URL": paygate_stack.redis.url.rsplit("/", 1)[0] + "/2",
            **provider_env(standins, payment_url=paygate_stack.url("payment")),
        }
        names = start_order([s.name for s in implemented_services(ROOT)])
        for name in names:
            procs.append(paygate_stack.start_service(name, env))
        yield paygate_stack.url("gateway")
    finally:
        for proc in reversed(procs):
            proc.stop()
            if proc in paygate_stack.started:
                paygate_stack.started.remove(proc)
        for standin in standins.values():
            standin.stop()
        kafka.stop()


def executions(report: dict[str, Any]) -> list[str]:
    """Request names newman ran, in order, a polled request once."""
    names: list[str] = []
    for execution in report["run"]["executions"]:
        name = execution["item"]["name"]
        if not names or names[-1] != name:
            names.append(name)
    return names


@pytest.mark.timeout(900)
def test_the_collection_runs_green_in_newman(
    gateway: str,
    newman_bin: Path,
    artifacts_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served_live = routes_of(httpx.get(f"{gateway}/openapi.json", timeout=30).json())
    served = routes_of(merged_openapi())
    # The gateway documents every route of this checkout: no service is missing from the run.
    assert served_live == served

    environment = build_collection.build_environment()
    overrides = {
        "base_url": f"{gateway}/api/v1",
        "admin_email": ADMIN_EMAIL,
        "admin_password": ADMIN_PASSWORD,
    }
    for value in environment["values"]:
        value["value"] = overrides.get(value["key"], value["value"])
    env_file = artifacts_dir / "postman-environment.json"
    env_file.write_text(json.dumps(environment, indent=2))
    report_file = artifacts_dir / "newman-report.json"
    report_file.unlink(missing_ok=True)

    result = subprocess.run(
        [
            str(newman_bin),
            "run",
            str(build_collection.COLLECTION_FILE),
            "-e",
            str(env_file),
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report_file),
            "--timeout-request",
            "30000",
            "--color",
            "off",
            "--disable-unicode",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    (artifacts_dir / "newman-output.txt").write_text(result.stdout + result.stderr)
    report = json.loads(report_file.read_text())
    failures = [
        f"{f['source']['name']}: {f['error'].get('test', '')} {f['error']['message']}"
        for f in report["run"]["failures"]
    ]
    expected = expected_runs(served)
    requests = [r for _, r in build_collection.all_requests()]
    gated = [r for r in requests if r.gate]
    unserved = [r.name for r in requests if r.name not in expected and not r.gate]
    with capsys.disabled():
        print(f"\nnewman: {len(expected)} requests run, {len(gated)} gated off by default:")
        for req in gated:
            print(f"  gated: {req.name}: {req.gate}")
        print(
            f"{len(unserved)} skipped because this checkout's gateway does not serve their "
            "route (or one they depend on):"
        )
        for name in unserved:
            print(f"  skipped: {name}")
    # Every gated request said why in the run's log (the skip is visible, not silent); the CLI
    # reporter wraps a console line as "\n  | " continuations.
    log = re.sub(r"\n  \| ", "", result.stdout)
    for req in gated:
        assert f"skipped {req.name!r} (gated off): {req.gate}" in log, req.name
    assert not failures, "\n".join(failures) + "\n" + result.stdout[-4000:]
    assert result.returncode == 0, result.stdout[-4000:]
    # A polled request asserts on its last try only: count assertions per request.
    asserted = {e["item"]["name"] for e in report["run"]["executions"] if e.get("assertions")}
    unasserted = sorted(set(expected) - asserted)
    assert not unasserted, f"requests that ran without a single pm.test: {unasserted}"
    # Nothing was skipped that should have run (a skip is not a pass).
    assert executions(report) == expected
