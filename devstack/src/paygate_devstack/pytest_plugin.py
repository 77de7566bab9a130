"""pytest fixtures that start real infrastructure (lazily, once per session, on free ports).

Enabled for the whole repository by the root conftest.py. Each fixture starts its component
only when a test asks for it, in a temporary directory, and stops it at session end; nothing
is shared with a running `make run`. Under pytest-xdist every worker starts its own, and
takes its ports from a range of its own (`worker_ports`).

    postgres        Postgres:   .dsn, .port, create_database(name=None) -> SQLAlchemy URL
    redis_server    Redis:      .url
    kafka_broker    Kafka:      .bootstrap, create_topics(names, partitions=3), pause(), resume()
    localstripe     LocalStripe: .api_base, .api_key, register_webhook(url, secret),
                                 payment_intents()
    smtp_sink       SmtpSink:   .host, .port, messages(), clear(), stop(), start()
    ecb_feed        EcbFeed:    .daily_url, publish(date, rates), set_down(); the ECB stand-in
    sms_sink        SmsSink:    .api_base, .account_sid, .auth_token, messages(to=None)
    push_sink       PushSink:   subscribe(private_key, auth) -> {endpoint, keys},
                                messages(endpoint=None) (decrypted), expire(endpoint)
    paygate_stack   PaygateStack: all of the above + .env for services + start_service(...)
    service_process factory:    service_process(name, env=None, port=None) -> ServiceProcess,
                                stopped when the test ends
    paypal_standin  RunningStandIn[PayPalStandIn]: .url, .host, the stand-in's state
    sslcommerz_standin RunningStandIn[SSLCommerzStandIn]: .url, the stand-in's state
                    (both served in the session's event loop: use them from async tests)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from paygate_common.auth import SigningKey
from paygate_devstack import TOPICS
from paygate_devstack.components import (
    STRIPE_TEST_KEY,
    Kafka,
    LocalStripe,
    Postgres,
    Redis,
    SmtpSink,
)
from paygate_devstack.ecb_feed import EcbFeed
from paygate_devstack.process import free_port, port_is_free, use_port_range
from paygate_devstack.push_sink import PushSink
from paygate_devstack.services import (
    SERVICES,
    ServiceProcess,
    StackEndpoints,
    repo_root,
    service_urls,
    shared_env,
    spec_for,
    start_service,
)
from paygate_devstack.sms_sink import SmsSink
from paygate_devstack.standins import RunningStandIn, running_paypal, running_sslcommerz
from paygate_devstack.testkit import TokenMint

# Under pytest-xdist each worker is a session of its own (its own PostgreSQL, broker, services):
# its ports come from a range of its own, below the kernel's ephemeral range (32768-60999).
WORKER_PORTS_FIRST, WORKER_PORTS_EACH, WORKER_PORT_SLOTS = 10_000, 2_500, 9


def worker_ports(worker: str) -> range:
    """The port range of xdist worker `gwN`."""
    slot = int(worker.removeprefix("gw") or 0) % WORKER_PORT_SLOTS
    first = WORKER_PORTS_FIRST + slot * WORKER_PORTS_EACH
    return range(first, first + WORKER_PORTS_EACH)


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        use_port_range(worker_ports(worker))


class PaygateStack:
    """Every component plus the environment a service subprocess gets (ENVIRONMENT=test).

    Every service has a port reserved up front, so PAYGATE_SERVICE_URLS and JWKS_URL are
    right whichever services a test starts, and in any order.
    """

    def __init__(
        self,
        *,
        postgres: Postgres,
        redis: Redis,
        kafka: Kafka,
        stripe: LocalStripe,
        smtp: SmtpSink,
        state_dir: Path,
    ) -> None:
        self.postgres = postgres
        self.redis = redis
        self.kafka = kafka
        self.stripe = stripe
        self.smtp = smtp
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.database_url = postgres.create_database("paygate")
        self.ports: dict[str, int] = {spec.name: free_port() for spec in SERVICES}
        self.urls = service_urls(self.ports)
        self.stripe_webhook_secret = "whsec_" + secrets.token_urlsafe(24)
        self.endpoints = StackEndpoints(
            database_url=self.database_url,
            redis_url=redis.url,
            kafka_bootstrap=kafka.bootstrap,
            stripe_api_base=stripe.api_base,
            stripe_api_key=stripe.api_key,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
        )
        self.env: dict[str, str] = shared_env(
            self.endpoints,
            state_dir=state_dir,
            urls=self.urls,
            stripe_webhook_secret=self.stripe_webhook_secret,
            service_token_secret=secrets.token_urlsafe(48),
            environment="test",
        )
        self.started: list[ServiceProcess] = []
        self.ecb_feed: EcbFeed | None = None

    def url(self, name: str) -> str:
        """Base URL a service gets (or has) in this session, e.g. url("user")."""
        return self.urls[spec_for(name).name]

    def start_service(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        *,
        migrate: bool = True,
        timeout: float = 180,
    ) -> ServiceProcess:
        """Migrate and start a service on its reserved port; `env` overrides the stack env.
        `timeout` bounds the wait for `/ready`: generous, as two parallel workers on a busy
        two-core box start services slowly (notification-service missed 60 s at load average 17).

        Starting the payment service also points localstripe's webhook at it.
        """
        spec = spec_for(name)
        merged = {**self.env, **(env or {})}
        if port is None:
            port = self.ports[spec.name]
            if not port_is_free(port):
                # Another instance of this stack's service still holds its reserved port (a
                # module's own copy beside the e2e suite's, on one parallel worker): without a
                # port of its own the new one fails to bind and `/ready` answers from the other.
                port = free_port()
        if spec.name == "payment":
            self.stripe.register_webhook(
                f"http://127.0.0.1:{port}/webhooks/stripe",
                merged["STRIPE_WEBHOOK_SECRET"],
                webhook_id="paygate-payment-service",
            )
        service = start_service(
            spec.name, merged, port, log_dir=self.log_dir, migrate=migrate, timeout=timeout
        )
        self.started.append(service)
        return service

    def stop_services(self) -> None:
        while self.started:
            self.started.pop().stop()

    def stack_json(self) -> dict[str, Any]:
        """The same keys as `.paygate/stack.json` of `make run`."""
        data: dict[str, Any] = {
            "database": self.database_url,
            "redis": self.redis.url,
            "kafka": self.kafka.bootstrap,
            "stripe": self.stripe.api_base,
            "smtp": f"smtp://{self.smtp.host}:{self.smtp.port}",
        }
        data.update({s.name: s.url for s in self.started if s.running})
        return data


class _Component(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> Any: ...


C = TypeVar("C", bound=_Component)


def _running(component: C) -> Iterator[C]:
    """A session fixture's body: start the component, hand it out, stop it at session end."""
    component.start()
    try:
        yield component
    finally:
        component.stop()


@pytest.fixture(scope="session")
def devstack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temporary home of this session's data dirs, logs and mail."""
    return tmp_path_factory.mktemp("devstack")


@pytest.fixture(scope="session")
def postgres(devstack_dir: Path) -> Iterator[Postgres]:
    # As root the server runs as another user, who must traverse every parent of the data dir.
    # pytest resets its own temp root to 0700 whenever another pytest session starts, which
    # would lock that user out mid-start; so the data dir lives in a folder of its own.
    home = Path(tempfile.mkdtemp(prefix="paygate-pg-")) if os.geteuid() == 0 else devstack_dir
    server = Postgres(
        home / "postgres" / "data",
        free_port(),
        log_path=devstack_dir / "logs" / "postgres.log",
    )
    server.start()
    yield server
    server.stop()
    if home != devstack_dir:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(devstack_dir: Path) -> Iterator[Redis]:
    yield from _running(
        Redis(devstack_dir / "redis", free_port(), log_path=devstack_dir / "logs" / "redis.log")
    )


@pytest.fixture(scope="session")
def kafka_broker(devstack_dir: Path) -> Iterator[Kafka]:
    broker = Kafka(free_port(), log_path=devstack_dir / "logs" / "kafka.log", topics=TOPICS)
    broker.start()
    yield broker
    broker.resume()  # a test that failed while the broker was paused
    broker.stop()


@pytest.fixture(scope="session")
def localstripe(devstack_dir: Path) -> Iterator[LocalStripe]:
    yield from _running(
        LocalStripe(
            free_port(), log_path=devstack_dir / "logs" / "stripe.log", api_key=STRIPE_TEST_KEY
        )
    )


@pytest.fixture(scope="session")
def smtp_sink(devstack_dir: Path) -> Iterator[SmtpSink]:
    yield from _running(SmtpSink(devstack_dir / "mail", port=free_port()))


@pytest.fixture(scope="session")
def ecb_feed() -> Iterator[EcbFeed]:
    yield from _running(EcbFeed())


@pytest.fixture(scope="session")
def sms_sink(devstack_dir: Path) -> Iterator[SmsSink]:
    yield from _running(SmsSink(devstack_dir / "sms", port=free_port()))


@pytest.fixture(scope="session")
def push_sink(devstack_dir: Path) -> Iterator[PushSink]:
    yield from _running(PushSink(devstack_dir / "push", port=free_port()))


@pytest.fixture(scope="session")
def paygate_stack(
    postgres: Postgres,
    redis_server: Redis,
    kafka_broker: Kafka,
    localstripe: LocalStripe,
    smtp_sink: SmtpSink,
    ecb_feed: EcbFeed,
    devstack_dir: Path,
) -> Iterator[PaygateStack]:
    """The whole infrastructure and the env services get; services start on demand."""
    stack = PaygateStack(
        postgres=postgres,
        redis=redis_server,
        kafka=kafka_broker,
        stripe=localstripe,
        smtp=smtp_sink,
        state_dir=devstack_dir / "state",
    )
    stack.ecb_feed = ecb_feed
    stack.env["ECB_DAILY_URL"] = ecb_feed.daily_url
    (devstack_dir / "state").mkdir(exist_ok=True)
    (devstack_dir / "state" / "stack.json").write_text(json.dumps(stack.stack_json(), indent=2))
    yield stack
    stack.stop_services()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    """One RS256 key for the session's in-process apps (see `token_mint`)."""
    return SigningKey.generate()


@pytest.fixture(scope="session")
def token_mint(signing_key: SigningKey) -> TokenMint:
    """Access tokens for any user and role, trusted by apps given `mint.trust(app)`."""
    return TokenMint(signing_key)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave what a person may want to look at (screenshots, reports):
    `.artifacts/` in the checkout, or `PAYGATE_ARTIFACTS_DIR`."""
    path = Path(os.environ.get("PAYGATE_ARTIFACTS_DIR") or repo_root() / ".artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
async def paypal_standin(devstack_dir: Path) -> AsyncIterator[RunningStandIn[Any]]:
    """The PayPal stand-in (Orders v2, webhooks) on a free port; state in <tmp>/paypal."""
    async with running_paypal(devstack_dir / "paypal") as standin:
        yield standin


@pytest.fixture(scope="session")
async def sslcommerz_standin(devstack_dir: Path) -> AsyncIterator[RunningStandIn[Any]]:
    """The SSLCommerz stand-in (v4 sessions, IPN, validation, refunds) on a free port."""
    async with running_sslcommerz(devstack_dir / "sslcommerz") as standin:
        yield standin


ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture
def service_process(paygate_stack: PaygateStack) -> Iterator[ServiceFactory]:
    """Factory: `service_process("user", env={...}, port=None)` → a running ServiceProcess.

    Runs the service's migrations, starts it under uvicorn and waits for `/ready`; every
    service started through it is stopped when the test ends. For a service shared by a
    module, use `paygate_stack.start_service(...)` in a module-scoped fixture instead.
    """
    started: list[ServiceProcess] = []

    def start(
        name: str,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ServiceProcess:
        service = paygate_stack.start_service(name, env, port, **kwargs)
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()
        if service in paygate_stack.started:
            paygate_stack.started.remove(service)


__all__ = ["PaygateStack", "ServiceProcess", "repo_root"]
