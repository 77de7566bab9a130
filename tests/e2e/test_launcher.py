"""`make run`'s launcher as a user runs it: it heals a SIGKILLed service, and the README works."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from paygate_devstack.schemathesis_kit import customer_headers
from paygate_devstack.services import repo_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = repo_root(Path(__file__).parent)
# The launcher must start its own infrastructure, as on a fresh machine.
_EXTERNAL = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "STRIPE_API_BASE", "SMTP_HOST")


def wait_for(predicate: Any, *, timeout: float) -> Any:
    """Sync twin of `paygate_devstack.events_testing.wait_for` (the launcher is driven sync)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"still {value!r} after {timeout}s")


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    state: Path
    output: Path

    def stack(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "stack.json").read_text())
        return data

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    base = tmp_path_factory.mktemp("launcher")
    state, output = base / ".paygate", base / "launcher.out"
    env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL and k != "PYTHONPATH"}
    env.update(
        PAYGATE_STATE_DIR=str(state),
        GATEWAY_RATE_LIMIT_AUTH="1000/minute",
        GATEWAY_RATE_LIMIT_ANON="10000/minute",
        GATEWAY_RATE_LIMIT_USER="10000/minute",
        # two payment-service processes (the hottest service in bench/checkout): the gateway
        # balances over both and the checkout's consumers split payment's partitions
        PAYGATE_REPLICAS="payment=2",
        GATEWAY_UPSTREAM_EJECT_SECONDS="1",
    )
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paygate_devstack", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    launched = Launched(proc, state, output)
    try:
        deadline = time.monotonic() + 300  # a loaded two-core box starts nine processes slowly
        while not (state / "stack.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the launcher did not come up:\n{launched.text()[-4000:]}")
            time.sleep(0.5)
        yield launched
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_sigkilled_service_comes_back_and_the_checkout_in_flight_settles(
    launched: Launched,
) -> None:
    stack = launched.stack()
    api = stack["gateway"] + "/api/v1"
    order_url, old_pid = stack["order"], stack["services"]["order"]["pid"]
    headers = customer_headers(api)

    with httpx.Client(base_url=api, timeout=30) as client:
        r = client.post("/orders", json={"amount": 1999, "currency": "usd"}, headers=headers)
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        # Crash the order service with the checkout in flight: order.create may not even be
        # relayed yet, and payment.event has still to be applied to this order.
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)

        def new_pid() -> int | None:
            pid = launched.stack()["services"]["order"]["pid"]
            return pid if pid != old_pid else None

        # The restart itself is prompt (asked for 0.2 s after the crash is seen) ...
        assert wait_for(new_pid, timeout=60)
        restarted_after = time.monotonic() - killed_at

        def ready() -> bool:
            try:
                return httpx.get(f"{order_url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        # ... and it is back: on an idle machine in 2-3 s; the wait is generous because a
        # loaded two-core box can take well over 10 s just to import a service.
        assert restarted_after < 10, f"restart asked for only after {restarted_after:.1f}s"
        assert wait_for(ready, timeout=60)

        def settled() -> str | None:
            status = client.get(f"/orders/{order_id}/status", headers=headers).json()["status"]
            return status if status != "pending" else None

        assert wait_for(settled, timeout=60) == "paid"

    out = launched.text()
    assert re.search(r"order service exited \(code -9\); restart 1 in 0\.2s", out), out[-3000:]
    assert "order service ready again" in out
    log = (launched.state / "logs" / "order.log").read_text()
    assert "supervisor: exited (code -9); restart 1 in 0.2s" in log
    assert launched.stack()["services"]["order"]["state"] == "up"


def _readme_walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Try a checkout through the gateway") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block in the README's checkout walkthrough"
    return match.group(1)


def test_the_readme_walkthrough_runs_verbatim(launched: Launched) -> None:
    script = _readme_walkthrough()
    assert "uv run" not in script  # not on PATH when uv came from `pip install --user`
    env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL}
    env.update(GW=launched.stack()["gateway"] + "/api/v1", PAYGATE_STATE_DIR=str(launched.state))
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"status":"paid"' in out.replace(" ", ""), out
    assert re.search(r"\.eml\b", out), out
    assert '"event_type": "order.created"' in out
    assert '"event_type": "payment.succeeded"' in out


def test_the_gateways_metrics_are_on_the_operator_port_not_the_public_one(
    launched: Launched,
) -> None:
    stack = launched.stack()
    public = httpx.get(f"{stack['gateway']}/metrics", timeout=10)
    operator = httpx.get(stack["gateway_metrics"], timeout=10)
    assert public.status_code == 404
    assert operator.status_code == 200 and "paygate_gateway" in operator.text
    ready = httpx.get(f"{stack['gateway']}/ready", timeout=10).json()
    assert ready["status"] == "ready" and ready["checks"]["jwks"] == "ok"


def _instance_answers(stack: dict[str, Any]) -> dict[str, float]:
    """Requests each payment instance answered (attempts minus failures), from /metrics."""
    text = httpx.get(stack["gateway_metrics"], timeout=10).text

    def per_instance(metric: str) -> dict[str, float]:
        pattern = metric + r'_total\{instance="([^"]+)",service="payment"\} (\S+)'
        return {url: float(value) for url, value in re.findall(pattern, text)}

    attempts = per_instance("paygate_gateway_instance_requests")
    failures = per_instance("paygate_gateway_instance_failures")
    return {url: n - failures.get(url, 0) for url, n in attempts.items()}


def test_two_payment_replicas_share_the_traffic_and_a_killed_one_is_routed_around(
    launched: Launched,
) -> None:
    stack = launched.stack()
    first, second = stack["services"]["payment"], stack["services"]["payment-2"]
    assert (first["service"], first["replica"]) == ("payment", 1)
    assert (second["service"], second["replica"]) == ("payment", 2)
    assert stack["replicas"]["payment"] == [first["url"], second["url"]]
    assert stack["env"]["GATEWAY_PAYMENT_URLS"] == f"{first['url']},{second['url']}"
    assert wait_for(lambda: "payment service (2/2)" in launched.text(), timeout=60)
    status = subprocess.run(
        [sys.executable, "-m", "paygate_devstack", "status"],
        cwd=ROOT,
        env={**os.environ, "PAYGATE_STATE_DIR": str(launched.state)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0 and '"payment-2"' in status.stdout

    api = stack["gateway"] + "/api/v1"
    headers = customer_headers(api)
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:

        def burst() -> None:
            for _ in range(20):
                r = client.get("/payments")
                assert r.status_code == 200, r.text

        burst()
        before = _instance_answers(stack)
        assert before[first["url"]] > 0 and before[second["url"]] > 0, before

        os.kill(second["pid"], signal.SIGKILL)
        burst()  # refused connections move on to the first replica: no caller sees the crash

        def restarted() -> bool:
            services = launched.stack()["services"]["payment-2"]
            return services["pid"] != second["pid"] and services["state"] == "up"

        assert wait_for(restarted, timeout=120)

        def served_again() -> bool:
            burst()
            return _instance_answers(stack)[second["url"]] > before[second["url"]]

        assert wait_for(served_again, timeout=60)
    assert "payment-2 service exited (code -9)" in launched.text()
