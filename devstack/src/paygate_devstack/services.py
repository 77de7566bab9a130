"""How one service runs locally: migrations, then uvicorn, then `/ready` (what it is: the registry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from paygate_common.services import (
    SERVICES,
    SERVICES_BY_NAME,
    ServiceSpec,
    replica_port,
    replica_urls_env,
    spec_for,
)
from paygate_devstack.process import (
    ComponentError,
    ManagedProcess,
    free_port,
    log_tail,
    wait_until,
)


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


# Several processes of one service: each serves the API and runs the service's consumers (one
# consumer group per service: the partitions are split between them) and workers.
MAX_REPLICAS = 8


def parse_replicas(text: str | None) -> dict[str, int]:
    """`payment=2,order=3` (or space separated) → {"payment": 2, "order": 3}; "" → {}."""
    counts: dict[str, int] = {}
    for item in (text or "").replace(",", " ").split():
        name, sep, count = item.partition("=")
        try:
            spec = spec_for(name.strip())
            n = int(count) if sep else 0
        except (KeyError, ValueError) as exc:
            raise ValueError(f"replicas: {item!r} is not <service>=<count> ({exc})") from None
        if spec.name == "gateway":
            raise ValueError("replicas: nothing in front of the gateway would balance over several")
        if not 1 <= n <= MAX_REPLICAS:
            raise ValueError(f"replicas: {spec.name} wants 1..{MAX_REPLICAS} processes, not {n}")
        counts[spec.name] = n
    return counts


def replica_name(name: str, index: int) -> str:
    """`payment` for the first process, `payment-2`, `payment-3` … for the others."""
    return name if index == 0 else f"{name}-{index + 1}"


def replica_ports(name: str, count: int) -> list[int]:
    """Where the processes of `name` listen by default (the registry: port + 10·i)."""
    return [replica_port(name, i) for i in range(count)]


def gateway_replica_env(urls: Mapping[str, list[str]]) -> dict[str, str]:
    """`GATEWAY_<SERVICE>_URLS` for every service with more than one process."""
    return {replica_urls_env(name): ",".join(u) for name, u in urls.items() if len(u) > 1}


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
        "JWKS_URL": f"{urls.get('user', spec_for('user').default_url)}/.well-known/jwks.json",
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
        replica: int = 0,
    ) -> None:
        self.spec = spec
        self.replica = replica  # 0 = the service's first (or only) process
        self.name = replica_name(spec.name, replica)
        self.root = root or repo_root()
        self.port = port or free_port()
        self.env = _child_env(env)
        self.log_path = Path(log_dir) / f"{self.name}.log"
        self.proc = ManagedProcess(
            self.name,
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


__all__ = [
    "SERVICES",
    "SERVICES_BY_NAME",
    "ServiceProcess",
    "ServiceSpec",
    "StackEndpoints",
    "gateway_replica_env",
    "implemented_services",
    "parse_replicas",
    "replica_name",
    "replica_ports",
    "repo_root",
    "service_urls",
    "shared_env",
    "spec_for",
    "start_service",
    "stop_services",
    "unfinished_services",
]
