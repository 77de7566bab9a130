"""`python -m paygate_devstack run|stop|status`: the whole suite on one machine, no Docker."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from paygate_devstack import TOPICS
from paygate_devstack.components import (
    STRIPE_TEST_KEY,
    Component,
    Kafka,
    LocalStripe,
    Postgres,
    Redis,
    SmtpSinkProcess,
    create_topics,
    register_stripe_webhook,
    to_asyncpg_dsn,
)
from paygate_devstack.ecb_feed import EcbFeedProcess
from paygate_devstack.process import (
    ComponentError,
    Supervisor,
    die_with_parent,
    pick_port,
    stop_all,
)
from paygate_devstack.push_sink import PushSinkProcess
from paygate_devstack.services import (
    SERVICES,
    ServiceProcess,
    ServiceSpec,
    StackEndpoints,
    gateway_replica_env,
    implemented_services,
    parse_replicas,
    replica_ports,
    repo_root,
    service_urls,
    shared_env,
    unfinished_services,
)
from paygate_devstack.sms_sink import SmsSinkProcess
from paygate_devstack.standins import provider_env, provider_standins
from paygate_devstack.tls import (
    HttpsServiceProcess,
    LocalTls,
    ensure_local_tls,
    gateway_tls_env,
    trust_instructions,
)

# Fixed, non-standard ports keep URLs stable between runs without colliding with a system
# PostgreSQL (5432), Redis (6379) or Kafka (9092); a busy one is replaced by a free port.
DEFAULT_PORTS = {
    "postgres": 55432,
    "redis": 56379,
    "kafka": 59092,
    "stripe": 58420,
    "smtp": 51025,
    "ecb": 58440,
    "gateway-metrics": 59464,  # the gateway's operator listener (/metrics is off its public port)
    "sms": 51026,
    "push": 51027,
}
DATABASE_NAME = "paygate"
DEV_BOOTSTRAP_ADMIN = {
    "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": "admin@example.com",
    "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": "dev-only-admin-password",
}
STRIPE_WEBHOOK_ID = "paygate-payment-service"

console = Console(highlight=False)
if not console.is_terminal:  # CI logs and pipes: never cut a URL at 80 columns
    console = Console(highlight=False, width=200)


class Shutdown(Exception):
    """SIGTERM / SIGHUP arrived: stop everything like Ctrl-C does."""


def state_dir_for(root: Path, override: str | None = None) -> Path:
    value = override or os.environ.get("PAYGATE_STATE_DIR")
    return Path(value).absolute() if value else root / ".paygate"


def load_secrets(state: Path) -> dict[str, str]:
    """Secrets generated once per state dir (FRESH=1 makes new ones)."""
    path = state / "secrets.json"
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    fresh = {
        "stripe_webhook_secret": "whsec_" + secrets.token_urlsafe(24),
        "service_token_secret": secrets.token_urlsafe(48),
    }
    for key, value in fresh.items():
        if not data.get(key):
            data[key] = value
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_launcher(state: Path) -> int | None:
    path = state / "stack.json"
    if not path.exists():
        return None
    try:
        pid = int(json.loads(path.read_text()).get("launcher_pid", 0))
    except (ValueError, json.JSONDecodeError):
        return None
    return pid if pid and _pid_alive(pid) else None


@dataclass
class Stack:
    root: Path
    state: Path
    components: dict[str, Component] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)
    failed_services: dict[str, str] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    tls: LocalTls | None = None
    metrics_port: int | None = None
    # processes per service beyond one (`make run REPLICAS=payment=2`); the gateway balances
    replicas: dict[str, int] = field(default_factory=dict)
    instance_urls: dict[str, list[str]] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def stop(self) -> None:
        for service in reversed(self.services):
            with console.status(f"stopping {service.name}…"):
                service.stop()
        for name, component in reversed(list(self.components.items())):
            with console.status(f"stopping {name}…"):
                component.stop()
        stop_all()


def _step(label: str, action: Callable[[], Any]) -> Any:
    started = time.monotonic()
    with console.status(f"{label}…"):
        result = action()
    console.print(f"[green]✓[/] {label} [dim]({time.monotonic() - started:.1f}s)[/]")
    return result


def start_infra(stack: Stack) -> StackEndpoints:
    """Start every component whose URL the environment does not already provide."""
    state, logs = stack.state, stack.logs
    logs.mkdir(parents=True, exist_ok=True)
    env = os.environ
    comps = stack.components

    if env.get("DATABASE_URL"):
        stack.external["database"] = env["DATABASE_URL"]
    else:
        comps["postgres"] = Postgres(
            state / "postgres" / "data",
            pick_port(DEFAULT_PORTS["postgres"]),
            log_path=logs / "postgres.log",
        )
    if env.get("REDIS_URL"):
        stack.external["redis"] = env["REDIS_URL"]
    else:
        comps["redis"] = Redis(
            state / "redis",
            pick_port(DEFAULT_PORTS["redis"]),
            persist=True,
            log_path=logs / "redis.log",
        )
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        stack.external["kafka"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    else:
        comps["kafka"] = Kafka(
            pick_port(DEFAULT_PORTS["kafka"]), log_path=logs / "kafka.log", topics=()
        )
    if env.get("STRIPE_API_BASE"):
        stack.external["stripe"] = env["STRIPE_API_BASE"]
    else:
        (state / "stripe").mkdir(parents=True, exist_ok=True)
        comps["stripe"] = LocalStripe(
            pick_port(DEFAULT_PORTS["stripe"]),
            log_path=logs / "stripe.log",
            store=state / "stripe" / "store.pickle",
        )
    if env.get("SMTP_HOST"):
        stack.external["smtp"] = f"smtp://{env['SMTP_HOST']}:{env.get('SMTP_PORT', '25')}"
    else:
        comps["smtp"] = SmtpSinkProcess(
            pick_port(DEFAULT_PORTS["smtp"]), maildir=state / "mail", log_path=logs / "smtp.log"
        )

    # PayPal / SSLCommerz stand-ins, unless PAYPAL_API_BASE / SSLCOMMERZ_API_BASE are set
    comps.update(provider_standins(state, logs, env))
    if env.get("ECB_DAILY_URL"):
        stack.external["ecb"] = env["ECB_DAILY_URL"]
    else:  # the ECB feed stand-in, so exchange-rate-service fetches "today's" rates offline
        comps["ecb"] = EcbFeedProcess(pick_port(DEFAULT_PORTS["ecb"]), log_path=logs / "ecb.log")
    # Stand-ins for notification-service's SMS provider and the browsers' push service.
    if not env.get("NOTIFICATION_SERVICE_SMS_API_BASE"):
        comps["sms"] = SmsSinkProcess(
            pick_port(DEFAULT_PORTS["sms"]), directory=state / "sms", log_path=logs / "sms.log"
        )
    comps["push"] = PushSinkProcess(
        pick_port(DEFAULT_PORTS["push"]), directory=state / "push", log_path=logs / "push.log"
    )

    # start them all, then wait for each: the slow ones overlap
    for name, comp in comps.items():
        _step(f"{name}: starting on port {comp.port}", partial(comp.start, wait=False))
    for name, comp in comps.items():
        _step(f"{name}: ready at {comp.url}", comp.wait_ready)

    if "postgres" in comps:
        pg = comps["postgres"]
        assert isinstance(pg, Postgres)
        database_url = _step(
            f"database {DATABASE_NAME!r}", lambda: pg.ensure_database(DATABASE_NAME)
        )
    else:
        database_url = env["DATABASE_URL"]

    kafka_bootstrap = comps["kafka"].url if "kafka" in comps else env["KAFKA_BOOTSTRAP_SERVERS"]
    _step(
        f"kafka topics ({len(TOPICS)})",
        lambda: create_topics(kafka_bootstrap, TOPICS),
    )
    smtp = comps.get("smtp")
    return StackEndpoints(
        database_url=database_url,
        redis_url=comps["redis"].url if "redis" in comps else env["REDIS_URL"],
        kafka_bootstrap=kafka_bootstrap,
        stripe_api_base=comps["stripe"].url if "stripe" in comps else env["STRIPE_API_BASE"],
        stripe_api_key=env.get("STRIPE_API_KEY", STRIPE_TEST_KEY),
        smtp_host=smtp.host if isinstance(smtp, SmtpSinkProcess) else env["SMTP_HOST"],
        smtp_port=smtp.port
        if isinstance(smtp, SmtpSinkProcess)
        else int(env.get("SMTP_PORT", "25")),
    )


def start_services(
    stack: Stack, endpoints: StackEndpoints, secrets_: dict[str, str]
) -> dict[str, str]:
    specs = implemented_services(stack.root)
    for spec in unfinished_services(stack.root):
        console.print(f"[yellow]•[/] {spec.folder}/ has no src/{spec.package}/main.py yet: skipped")
    ports = {}
    for spec in SERVICES:  # every service gets a URL, so the gateway can report absent ones
        port = pick_port(spec.port) if spec in specs else spec.port
        if spec in specs and port != spec.port:
            console.print(f"[yellow]•[/] port {spec.port} is busy: {spec.name} uses {port}")
        ports[spec.name] = port
    # the further processes of a replicated service: ports from the registry (port + 10·i)
    extra: dict[str, list[int]] = {}
    for spec in specs:
        wanted = replica_ports(spec.name, stack.replicas.get(spec.name, 1))[1:]
        extra[spec.name] = [pick_port(p) for p in wanted]
        for want, got in zip(wanted, extra[spec.name], strict=True):
            if want != got:
                console.print(f"[yellow]•[/] port {want} is busy: a {spec.name} replica uses {got}")
    urls = service_urls(ports)
    if stack.tls is not None:
        urls["gateway"] = urls["gateway"].replace("http://", "https://")
    stack.instance_urls = {
        name: [urls[name], *(f"http://127.0.0.1:{port}" for port in more)]
        for name, more in extra.items()
        if more
    }
    env = shared_env(
        endpoints,
        state_dir=stack.state,
        urls=urls,
        stripe_webhook_secret=secrets_["stripe_webhook_secret"],
        service_token_secret=secrets_["service_token_secret"],
        environment="development",
    )
    env.update(provider_env(stack.components, payment_url=urls["payment"]))
    env.update(gateway_replica_env(stack.instance_urls))  # the gateway's GATEWAY_<SERVICE>_URLS
    if ecb_daily_url(stack):  # a stack started without the feed leaves the service its default
        env["ECB_DAILY_URL"] = ecb_daily_url(stack)
    if "sms" in stack.components:
        env["NOTIFICATION_SERVICE_SMS_API_BASE"] = stack.components["sms"].url
    # A local operator to sign in to the console with (and the Postman environment's admin),
    # unless the shell names its own; development only, like every other default here.
    for name, value in DEV_BOOTSTRAP_ADMIN.items():
        env.setdefault(name, os.environ.get(name, value))
    if any(s.name == "payment" for s in specs):
        hook = f"{urls['payment']}/webhooks/stripe"
        _step(
            f"stripe webhook → {hook}",
            lambda: register_stripe_webhook(
                endpoints.stripe_api_base,
                hook,
                secrets_["stripe_webhook_secret"],
                webhook_id=STRIPE_WEBHOOK_ID,
            ),
        )
    if not specs:
        console.print("[yellow]•[/] no service is implemented yet: infrastructure only")
        return env

    candidates = [_service_process(stack, spec, env, ports[spec.name]) for spec in specs]
    # each service migrates its own schema: run them side by side
    errors = _step(
        f"migrations: {', '.join(s.name for s in specs)}",
        lambda: list(ThreadPoolExecutor(max_workers=4).map(_migrate, candidates)),
    )
    pending: list[ServiceProcess] = []
    for service, error in zip(candidates, errors, strict=True):
        if error is not None:
            _report_failure(stack, service.name, error)
            continue
        replicas = [
            ServiceProcess(
                service.spec, env=env, port=port, root=stack.root, log_dir=stack.logs, replica=i
            )
            for i, port in enumerate(extra.get(service.name, ()), start=1)
        ]
        for process in (service, *replicas):  # migrated once, by the first
            process.start(wait=False)
            stack.services.append(process)
            pending.append(process)
    for service in pending:
        try:
            _step(f"{service.name}: ready at {service.url}", partial(service.wait_ready, 90))
        except ComponentError as exc:
            service.stop()
            stack.services.remove(service)
            _report_failure(stack, service.name, str(exc))
    return env


def ecb_daily_url(stack: Stack) -> str:
    feed = stack.components.get("ecb")
    return feed.daily_url if isinstance(feed, EcbFeedProcess) else stack.external.get("ecb", "")


def _service_process(
    stack: Stack, spec: ServiceSpec, env: dict[str, str], port: int
) -> ServiceProcess:
    if spec.name == "gateway":
        stack.metrics_port = pick_port(DEFAULT_PORTS["gateway-metrics"])
        env = {**env, "GATEWAY_METRICS_PORT": str(stack.metrics_port)}
    if spec.name == "gateway" and stack.tls is not None:
        return HttpsServiceProcess(
            spec,
            env={**env, **gateway_tls_env(stack.tls)},
            port=port,
            root=stack.root,
            log_dir=stack.logs,
            ca=stack.tls.ca,
        )
    return ServiceProcess(spec, env=env, port=port, root=stack.root, log_dir=stack.logs)


def _migrate(service: ServiceProcess) -> str | None:
    try:
        service.migrate()
    except ComponentError as exc:
        return str(exc)
    return None


def _report_failure(stack: Stack, name: str, message: str) -> None:
    stack.failed_services[name] = message
    console.print(f"[bold red]✗ {name} did not start[/]")
    console.print(message, markup=False)


def write_stack_json(stack: Stack, endpoints: StackEndpoints, env: dict[str, str]) -> Path:
    smtp_url = f"smtp://{endpoints.smtp_host}:{endpoints.smtp_port}"
    data: dict[str, Any] = {
        "database": endpoints.database_url,
        "redis": endpoints.redis_url,
        "kafka": endpoints.kafka_bootstrap,
        "stripe": endpoints.stripe_api_base,
        "smtp": smtp_url,
    }
    for service in stack.services:
        data[service.name] = service.url
    data.update(
        {
            # every process of a replicated service, as the gateway balances over them
            "replicas": stack.instance_urls,
        }
    )
    data.update(
        {
            "launcher_pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "state_dir": str(stack.state),
            "logs_dir": str(stack.logs),
            "mail_dir": str(stack.state / "mail") if "smtp" in stack.components else None,
            "secrets_file": str(stack.state / "secrets.json"),
            "stripe_api_key": endpoints.stripe_api_key,
            "topics": list(TOPICS),
            "infra": {
                name: {
                    "url": comp.url,
                    "pid": comp.pid,
                    "port": comp.port,
                    "log": str(comp.log_path),
                }
                for name, comp in stack.components.items()
            },
            "external": stack.external,
            "services": {
                s.name: {
                    "service": s.spec.name,
                    "replica": s.replica + 1,
                    "url": s.url,
                    "docs": f"{s.url}/docs",
                    "pid": s.pid,
                    "port": s.port,
                    "log": str(s.log_path),
                    **(stack.supervisor.status().get(s.name, {}) if stack.supervisor else {}),
                }
                for s in stack.services
            },
            "failed_services": sorted(stack.failed_services),
            "gateway_metrics": f"http://127.0.0.1:{stack.metrics_port}/metrics"
            if stack.metrics_port
            else None,
            "tls_ca": str(stack.tls.ca) if stack.tls else None,
            "env": env,
        }
    )
    path = stack.state / "stack.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_table(stack: Stack, endpoints: StackEndpoints, stack_json: Path) -> None:
    table = Table(title="paygate is running", title_justify="left", show_lines=False)
    table.add_column("what")
    table.add_column("URL", no_wrap=True, overflow="fold")
    table.add_column("notes", style="dim")
    by_name = {s.name: s for s in stack.services}
    gateway = by_name.get("gateway")
    if gateway:
        table.add_row(
            "[bold]gateway[/]", f"[bold]{gateway.url}[/]", f"API docs: {gateway.url}/docs"
        )
        if stack.metrics_port:
            table.add_row(
                "gateway metrics", f"http://127.0.0.1:{stack.metrics_port}/metrics", "operators"
            )
    for spec in SERVICES:
        if spec.name == "gateway":
            continue
        processes = [s for s in stack.services if s.spec.name == spec.name]
        for service in processes:
            label = f"{spec.name} service"
            if len(processes) > 1:
                label += f" ({service.replica + 1}/{len(processes)})"
            table.add_row(label, service.url, f"docs: {service.url}/docs")
    for name in stack.failed_services:
        table.add_row(
            f"[red]{name} service[/]", "[red]failed[/]", f"log: {_relative(stack.logs / name)}.log"
        )
    table.add_section()
    db = urlsplit(endpoints.database_url)
    psql = f"psql {to_asyncpg_dsn(endpoints.database_url)}" if db.hostname else ""
    rows = [
        ("database", endpoints.database_url, psql),
        ("redis", endpoints.redis_url, ""),
        (
            "kafka",
            endpoints.kafka_bootstrap,
            f"{len(TOPICS)} topics, memory only (recreated each run)",
        ),
        ("stripe", endpoints.stripe_api_base, f"localstripe, key {endpoints.stripe_api_key}"),
    ]
    smtp_note = (
        f"emails land in {_relative(stack.state / 'mail')}/*.eml"
        if "smtp" in stack.components
        else "external SMTP server"
    )
    rows.append(("smtp", f"smtp://{endpoints.smtp_host}:{endpoints.smtp_port}", smtp_note))
    rows += [
        (name, comp.url, f"stand-in (a fake), state in {_relative(stack.state / name)}")
        for name, comp in stack.components.items()
        if name in ("paypal", "sslcommerz")
    ]
    rows.append(("ecb", ecb_daily_url(stack), "ECB reference-rate feed stand-in"))
    for name, url, note in rows:
        table.add_row(name, url, "external" if name in stack.external else note)
    console.print(table)
    console.print(
        f"state: {_relative(stack.state)}  ·  logs: {_relative(stack.logs)}/*.log  ·  "
        f"stack: {_relative(stack_json)}"
    )
    if stack.tls is not None:
        console.print(trust_instructions(stack.tls), markup=False)
    console.print("[bold]Ctrl-C stops everything.[/]")


def monitor(stack: Stack, on_change: Callable[[], Any] | None = None) -> int:
    """Watch the children: an infrastructure crash stops the stack; a crashed service is
    restarted with backoff (compose's `restart: unless-stopped`) and reported until it is back."""

    def report(kind: str, name: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if kind == "crashed":
            service = next(s for s in stack.services if s.name == name)
            console.print(f"\n[bold red]✗ {stamp} {name} service {message}[/]")
            console.print(f"last lines of {service.log_path}:", markup=False)
            console.print(service.log_tail(10), markup=False)
        elif kind == "restarting":
            console.print(f"[yellow]↻ {stamp} {name} service: {message}[/]")
        else:
            console.print(f"[green]✓ {stamp} {name} service ready again ({message})[/]")
        up = [s for s, w in supervisor.status().items() if w["state"] == "up"]
        down = [s for s, w in supervisor.status().items() if w["state"] != "up"]
        console.print(
            f"[dim]up: {', '.join(up) or '-'}"
            + (f"  ·  not up: {', '.join(down)}" if down else "")
            + "[/]"
        )

    supervisor = Supervisor(stack.services, report=report)
    stack.supervisor = supervisor
    while True:
        time.sleep(0.25)
        for name, component in stack.components.items():
            if not component.running:
                code = component.proc.poll()
                console.print(f"\n[bold red]✗ {name} exited unexpectedly (exit code {code}).[/]")
                console.print(f"last lines of {component.log_path}:", markup=False)
                console.print(component.proc.log_tail(), markup=False)
                console.print("[red]stopping the stack: the services cannot work without it.[/]")
                return 1
        if supervisor.tick() and on_change is not None:
            on_change()


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def cmd_run(args: argparse.Namespace) -> int:
    root = repo_root()
    state = state_dir_for(root, args.state_dir)
    other = running_launcher(state)
    if other and other != os.getpid():
        console.print(
            f"[red]A stack is already running from {state} (launcher pid {other}).[/] "
            "Stop it with Ctrl-C in its terminal or `python -m paygate_devstack stop`."
        )
        return 1
    if args.fresh and state.exists():
        _step(f"wiping {_relative(state)} (FRESH)", lambda: shutil.rmtree(state))
    state.mkdir(parents=True, exist_ok=True)
    (state / "stack.json").unlink(missing_ok=True)

    die_with_parent()  # if make/uv is killed, we get SIGTERM and clean up
    # a shell starting us in the background may have set SIGINT to "ignore": take it back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGHUP, _raise_shutdown)
    try:
        replicas = parse_replicas(args.replicas or os.environ.get("PAYGATE_REPLICAS"))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    stack = Stack(root=root, state=state, replicas=replicas)
    if args.tls:
        stack.tls = _step(
            f"TLS: local CA and certificate in {_relative(state / 'tls')}",
            lambda: ensure_local_tls(state / "tls"),
        )
    code = 0
    try:
        secrets_ = load_secrets(state)
        endpoints = start_infra(stack)
        env = shared_env(
            endpoints,
            state_dir=state,
            urls=service_urls({s.name: s.port for s in SERVICES}),
            stripe_webhook_secret=secrets_["stripe_webhook_secret"],
            service_token_secret=secrets_["service_token_secret"],
        )
        if not args.no_services:
            env = start_services(stack, endpoints, secrets_)
        stack_json = write_stack_json(stack, endpoints, env)
        print_table(stack, endpoints, stack_json)
        if args.exit_when_ready:
            return 0 if not stack.failed_services else 1
        code = monitor(stack, on_change=lambda: write_stack_json(stack, endpoints, env))
    except (KeyboardInterrupt, Shutdown) as exc:
        console.print(
            f"\n[bold]{'Ctrl-C' if isinstance(exc, KeyboardInterrupt) else exc}: stopping…[/]"
        )
    except ComponentError as exc:
        console.print("[bold red]✗ the stack could not start:[/]")
        console.print(str(exc), markup=False)
        code = 1
    finally:
        # a second Ctrl-C must not abandon half-stopped children
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        (state / "stack.json").unlink(missing_ok=True)
        console.print("stopped: every process this launcher started has exited.")
    return code


def cmd_stop(args: argparse.Namespace) -> int:
    state = state_dir_for(repo_root(), args.state_dir)
    pid = running_launcher(state)
    if pid is None:
        console.print("no stack is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    console.print("stopped" if not _pid_alive(pid) else f"launcher {pid} is still stopping")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = state_dir_for(repo_root(), args.state_dir)
    if running_launcher(state) is None:
        console.print("no stack is running")
        return 1
    console.print_json((state / "stack.json").read_text())
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """Print a topic's messages (from the start) as JSON lines: see what crossed the broker."""
    import asyncio
    import uuid

    from aiokafka import AIOKafkaConsumer

    state = state_dir_for(repo_root(), args.state_dir)
    stack_file = state / "stack.json"
    if not stack_file.exists():
        console.print("no stack is running (start it with `make run`)")
        return 1
    bootstrap = json.loads(stack_file.read_text())["kafka"]

    async def dump() -> int:
        consumer = AIOKafkaConsumer(
            args.topic,
            bootstrap_servers=bootstrap,
            group_id=f"paygate-events-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        shown = 0
        try:
            idle = 0
            while idle < 2 or args.follow:
                batch = await consumer.getmany(timeout_ms=700)
                idle = 0 if batch else idle + 1
                for records in batch.values():
                    for rec in records:
                        key = rec.key.decode() if rec.key else None
                        sys.stdout.write(
                            json.dumps({"key": key, "value": json.loads(rec.value)}) + "\n"
                        )
                        shown += 1
                sys.stdout.flush()
        finally:
            await consumer.stop()
        return shown

    shown = asyncio.run(dump())
    console.print(f"[dim]{shown} message(s) on {args.topic}[/dim]", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paygate_devstack",
        description="Run paygate locally without Docker: PostgreSQL, Redis, a Kafka-protocol "
        "broker (Tansu), localstripe and an SMTP sink, then every implemented service.",
    )
    parser.add_argument("--state-dir", help="default: <repo>/.paygate (or $PAYGATE_STATE_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the stack in the foreground; Ctrl-C stops it")
    run.add_argument("--fresh", action="store_true", help="wipe the state dir first")
    run.add_argument("--no-services", action="store_true", help="infrastructure only")
    run.add_argument(
        "--tls",
        action="store_true",
        help="serve the gateway over HTTPS with a local CA's certificate (in <state>/tls/)",
    )
    run.add_argument(
        "--replicas",
        metavar="SERVICE=N,...",
        help="run N processes of a service, e.g. payment=2 (default $PAYGATE_REPLICAS); "
        "the gateway balances over them",
    )
    run.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop everything again once it is up (a smoke test)",
    )
    sub.add_parser("stop", help="stop the stack started by `run` from another terminal")
    sub.add_parser("status", help="print .paygate/stack.json of the running stack")
    events = sub.add_parser("events", help="print a topic's messages as JSON lines")
    events.add_argument("topic", help="order.create, payment.event, notification.dlq, ...")
    events.add_argument("--follow", action="store_true", help="keep printing new messages")
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "stop": cmd_stop, "status": cmd_status, "events": cmd_events}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
