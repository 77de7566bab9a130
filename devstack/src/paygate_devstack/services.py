"""The service registry and how one service runs: migrations, then uvicorn, then `/ready`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from paygate_devstack.process import (
    ComponentError,
    ManagedProcess,
    free_port,
    log_tail,
    wait_until,
)


@dataclass(frozen=True)
class ServiceSpec:
    """One row of the registry; `name` is the key in PAYGATE_SERVICE_URLS and stack.json."""

    name: str
    folder: str
    package: str
    port: int
    env_prefix: str
    schema: str | None
    # Extra uvicorn flags. The gateway sets X-Forwarded-For itself and must not let uvicorn
    # trust a client's header, or a caller could pick the IP its rate limit is counted against.
    uvicorn_args: tuple[str, ...] = ()

    @property
    def app(self) -> str:
        """The ASGI factory uvicorn runs with `--factory`."""
        return f"{self.package}.main:create_app"


# Gateway first: it is the entry point and leads the printed table.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "gateway",
        "gateway",
        "gateway",
        8000,
        "GATEWAY_",
        None,
        ("--no-proxy-headers", "--loop", "uvloop", "--http", "gateway.server:GatewayHttpProtocol"),
    ),
    ServiceSpec("user", "user-service", "user_service", 8001, "USER_SERVICE_", "users"),
    ServiceSpec(
        "payment", "payment-service", "payment_service", 8002, "PAYMENT_SERVICE_", "payments"
    ),
    ServiceSpec(
        "transaction",
        "transaction-service",
        "transaction_service",
        8003,
        "TRANSACTION_SERVICE_",
        "transactions",
    ),
    ServiceSpec(
        "notification",
        "notification-service",
        "notification_service",
        8004,
        "NOTIFICATION_SERVICE_",
        "notifications",
    ),
    ServiceSpec("audit", "audit-service", "audit_service", 8005, "AUDIT_SERVICE_", "audit"),
    ServiceSpec(
        "exchange-rate",
        "exchange-rate-service",
        "exchange_rate_service",
        8006,
        "EXCHANGE_RATE_SERVICE_",
        "rates",
    ),
    ServiceSpec("admin", "admin-service", "admin_service", 8007, "ADMIN_SERVICE_", "admin"),
    ServiceSpec("order", "order-service", "order_service", 8008, "ORDER_SERVICE_", "orders"),
)
SERVICES_BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}


def spec_for(name: str) -> ServiceSpec:
    """Look a service up by name ("user"), folder ("user-service") or package ("user_service")."""
    for spec in SERVICES:
        if name in (spec.name, spec.folder, spec.package):
            return spec
    known = ", ".join(s.name for s in SERVICES)
    raise KeyError(f"unknown service {name!r}; known: {known}")


def repo_root(start: Path | None = None) -> Path:
    """The workspace root: the nearest parent with a uv workspace pyproject.toml."""
    here = (start or Path.cwd()).absolute()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.exists() and "[tool.uv.workspace]" in pyproject.read_text():
            return candidate
    # installed as a package outside a checkout: the checkout this file lives in
    return Path(__file__).resolve().parents[3]


def is_implemented(spec: ServiceSpec, root: Path) -> bool:
    """The folder exists and has the app module uvicorn needs."""
    return (root / spec.folder / "src" / spec.package / "main.py").exists()


def implemented_services(root: Path | None = None) -> list[ServiceSpec]:
    root = root or repo_root()
    return [s for s in SERVICES if is_implemented(s, root)]


def unfinished_services(root: Path | None = None) -> list[ServiceSpec]:
    """Folders that exist but have no `src/<package>/main.py` yet."""
    root = root or repo_root()
    return [s for s in SERVICES if (root / s.folder).is_dir() and not is_implemented(s, root)]


@dataclass(frozen=True)
class StackEndpoints:
    """Where the infrastructure is; everything a service needs to reach it."""

    database_url: str
    redis_url: str
    kafka_bootstrap: str
    stripe_api_base: str
    stripe_api_key: str
    smtp_host: str
    smtp_port: int


def service_urls(ports: Mapping[str, int]) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def shared_env(
    endpoints: StackEndpoints,
    *,
    state_dir: Path,
    urls: Mapping[str, str],
    stripe_webhook_secret: str,
    service_token_secret: str,
    environment: str = "development",
) -> dict[str, str]:
    """The unprefixed variables every service reads (its prefixed ones still win)."""
    return {
        "DATABASE_URL": endpoints.database_url,
        "REDIS_URL": endpoints.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "STRIPE_API_BASE": endpoints.stripe_api_base,
        "STRIPE_API_KEY": endpoints.stripe_api_key,
        "STRIPE_WEBHOOK_SECRET": stripe_webhook_secret,
        "SMTP_HOST": endpoints.smtp_host,
        "SMTP_PORT": str(endpoints.smtp_port),
        "ENVIRONMENT": environment,
        "PAYGATE_STATE_DIR": str(state_dir.absolute()),
        "JWKS_URL": f"{urls.get('user', 'http://127.0.0.1:8001')}/.well-known/jwks.json",
        "SERVICE_TOKEN_SECRET": service_token_secret,
        "PAYGATE_SERVICE_URLS": json.dumps(dict(urls)),
    }


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # a virtualenv from the caller's shell must not shadow ours
    env.pop("PYTHONPATH", None)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class ServiceProcess:
    """One paygate service under uvicorn, as a real subprocess on 127.0.0.1:<port>."""

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        env: Mapping[str, str],
        port: int | None = None,
        root: Path | None = None,
        log_dir: Path,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.root = root or repo_root()
        self.port = port or free_port()
        self.env = _child_env(env)
        self.log_path = Path(log_dir) / f"{spec.name}.log"
        self.proc = ManagedProcess(
            spec.name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                spec.app,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
                *spec.uvicorn_args,
            ],
            log_path=self.log_path,
            env=self.env,
            cwd=self.root / spec.folder,
            stop_signal=15,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def folder(self) -> Path:
        return self.root / self.spec.folder

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.running

    def migrate(self, timeout: float = 120) -> None:
        """`alembic upgrade head` for the service, when it has an alembic.ini."""
        ini = self.folder / "alembic.ini"
        if not ini.exists():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with open(self.log_path.with_suffix(".migrate.log"), "a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ComponentError(
                f"{self.name}: migrations failed (exit {result.returncode}):\n"
                + "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            )

    def start(self, *, wait: bool = True, timeout: float = 60) -> None:
        self.proc.start()
        if wait:
            self.wait_ready(timeout)

    def is_ready(self) -> bool:
        return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            self.is_ready,
            timeout=timeout,
            what=f"{self.name} service ({self.url}/ready)",
            proc=self.proc,
            interval=0.2,
        )

    def stop(self) -> None:
        self.proc.stop()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, in-flight work is lost (crash test)."""
        self.proc.kill()

    def restart(self, *, wait: bool = True, timeout: float = 60) -> None:
        """Stop (if still running) and start again on the same port with the same env."""
        self.proc.stop()
        self.start(wait=wait, timeout=timeout)

    def pause(self) -> None:
        self.proc.pause()

    def resume(self) -> None:
        self.proc.resume()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def start_service(
    name: str,
    env: Mapping[str, str],
    port: int | None = None,
    *,
    log_dir: Path,
    root: Path | None = None,
    migrate: bool = True,
    wait: bool = True,
    timeout: float = 60,
) -> ServiceProcess:
    """Run a service's migrations, start it with uvicorn and wait for `/ready`.

    `env` is laid over this process's environment; pass the output of `shared_env()`
    (the pytest fixtures do) plus any overrides.
    """
    service = ServiceProcess(spec_for(name), env=env, port=port, root=root, log_dir=log_dir)
    if migrate:
        service.migrate()
    try:
        service.start(wait=wait, timeout=timeout)
    except BaseException:
        service.stop()
        raise
    return service


def stop_services(services: Iterable[ServiceProcess]) -> None:
    for service in reversed(list(services)):
        service.stop()
