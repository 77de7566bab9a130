"""The launcher's supervisor brings a SIGKILLed service back at once, then backs off if it keeps dying."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from paygate_devstack.process import Supervisor
from paygate_devstack.pytest_plugin import PaygateStack
from paygate_devstack.services import ServiceProcess, spec_for

_TINY_APP = """
import os
from fastapi import FastAPI

def create_app():
    app = FastAPI()

    @app.get("/ready")
    def ready():
        return {"status": "ok", "pid": os.getpid()}

    return app
"""


def _tiny_service(tmp_path: Path, env: dict[str, str]) -> ServiceProcess:
    folder = tmp_path / "order-service"
    (folder / "src" / "order_service").mkdir(parents=True)
    (folder / "src" / "order_service" / "__init__.py").write_text("")
    (folder / "src" / "order_service" / "main.py").write_text(_TINY_APP)
    return ServiceProcess(
        spec_for("order"),
        env={**env, "PYTHONPATH": str(folder / "src")},
        root=tmp_path,
        log_dir=tmp_path / "logs",
    )


def _supervise_until(supervisor: Supervisor, name: str, state: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        supervisor.tick()
        if supervisor.status()[name]["state"] == state:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{name} not {state} after {timeout}s: {supervisor.status()[name]}")


def test_a_sigkilled_service_is_restarted_promptly_and_repeated_crashes_back_off(
    paygate_stack: PaygateStack, tmp_path: Path
) -> None:
    service = _tiny_service(tmp_path, dict(paygate_stack.env))
    service.start(timeout=60)
    events: list[tuple[str, str, str]] = []
    supervisor = Supervisor([service], report=lambda *e: events.append(e), stable_seconds=60)
    try:
        first_pid = service.pid
        assert first_pid is not None
        killed_at = time.monotonic()
        os.kill(first_pid, signal.SIGKILL)
        _supervise_until(supervisor, "order", "waiting", 10)
        # The launcher's own wait is generous for a loaded box; the restart itself is asked
        # for after 0.2 s and uvicorn starts in about a second.
        _supervise_until(supervisor, "order", "up", 30)
        assert time.monotonic() - killed_at < 10
        answer = httpx.get(f"{service.url}/ready", timeout=5).json()
        assert answer.get("pid") == service.pid != first_pid, answer
        assert [kind for kind, *_ in events] == ["crashed", "restarting", "ready"]
        assert "code -9" in events[0][2]

        # A second crash soon after: the next restart waits twice as long (bounded).
        assert service.pid is not None
        os.kill(service.pid, signal.SIGKILL)
        _supervise_until(supervisor, "order", "waiting", 10)
        assert "restart 2 in 0.4s" in events[-1][2]
        _supervise_until(supervisor, "order", "up", 30)
        assert supervisor.status()["order"]["restarts"] == 2
        assert [supervisor.delay_for(n) for n in (1, 2, 3, 10, 50)] == [0.2, 0.4, 0.8, 30, 30]

        log = service.log_path.read_text()
        assert "supervisor: exited (code -9); restart 1 in 0.2s" in log
        assert "supervisor: ready again" in log
    finally:
        service.stop()
