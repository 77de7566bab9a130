"""The service registry: what each paygate service is, written once for the whole suite.

Every other place reads this: the launcher (ports, start order, migrations), the gateway's
route table, each service's settings (env prefix, schema, port), the container entrypoint
(`python -m paygate_common.services shell <service>`) and `tests/deploy`, which holds the
compose files and Kubernetes manifests against it. Adding a service is a folder plus one
`ServiceSpec` here.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

from paygate_common.events import topics as t

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class PublicRoute:
    """A public prefix under `/api/v1` (or a web surface at the root) and where it goes upstream.

    `prefix` matches itself and anything below `prefix + "/"`. `limit` names a gateway settings
    field with a stricter per-IP limit that replaces the anon/user one for this route.
    """

    prefix: str
    upstream: str | None = None  # defaults to `prefix`
    public: bool = False  # no JWT at the edge (the upstream checks its own way)
    limit: str | None = None
    timeout: float | None = None  # seconds; None = the gateway's default
    web: bool = False  # an HTML surface at the gateway root, not under /api/v1

    @property
    def upstream_prefix(self) -> str:
        return self.upstream or self.prefix

    @property
    def gateway_prefix(self) -> str:
        return self.prefix if self.web else API_PREFIX + self.prefix


@dataclass(frozen=True)
class ServiceSpec:
    """One service. Its folder, package, env prefix and settings name derive from `name`."""

    name: str  # the key in PAYGATE_SERVICE_URLS and stack.json: "order"
    port: int
    schema: str | None  # its PostgreSQL schema; None owns no tables
    title: str = ""
    routes: tuple[PublicRoute, ...] = ()
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    # uvicorn options beyond host and port, as `uvicorn.run` keyword arguments.
    uvicorn: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return self.name if self.name == "gateway" else f"{self.name}-service"

    @property
    def package(self) -> str:
        return self.folder.replace("-", "_")

    @property
    def service_name(self) -> str:
        """The name in logs, metrics and event envelopes ("order-service")."""
        return self.folder

    @property
    def env_prefix(self) -> str:
        return self.package.upper() + "_"

    @property
    def app(self) -> str:
        """The ASGI factory uvicorn runs with `--factory`."""
        return f"{self.package}.main:create_app"

    @property
    def uvicorn_args(self) -> tuple[str, ...]:
        """`uvicorn` with these command-line flags runs the service as `run_service` does."""
        args: list[str] = []
        for key, value in self.uvicorn.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is False:
                args.append("--no-" + key.replace("_", "-"))
            else:
                args += [flag, str(value)]
        return tuple(args)

    @property
    def default_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


R = PublicRoute

# Gateway first: it is the entry point and leads the launcher's table. The others in port order.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "gateway",
        8000,
        None,
        title="the public entry: routing, auth at the edge, rate limits, merged docs",
        # The gateway sets X-Forwarded-For itself and must not let uvicorn trust a client's
        # header (a caller could pick the IP its rate limit is counted against); uvloop and the
        # one-write HTTP protocol are its hot path (gateway/server.py).
        uvicorn={
            "proxy_headers": False,
            "loop": "uvloop",
            "http": "gateway.server:GatewayHttpProtocol",
        },
    ),
    ServiceSpec(
        "user",
        8001,
        "users",
        title="accounts, sign-in, JWT issuing (JWKS), profiles, saved payment methods",
        routes=(
            R("/auth/signup", public=True, limit="rate_limit_auth"),
            R("/auth/signin", public=True, limit="rate_limit_auth"),
            R("/auth/token", public=True, limit="rate_limit_auth"),
            R("/auth", public=True),
            R("/users"),
            R("/api-keys"),
        ),
        produces=(t.USER_REGISTERED, t.AUDIT_EVENT),
        # The sign-in throttle keys on the client IP the gateway forwards.
        uvicorn={"proxy_headers": True},
    ),
    ServiceSpec(
        "payment",
        8002,
        "payments",
        title="payments lifecycle, provider connectors, provider webhooks, no double charge",
        routes=(
            R("/payments", timeout=30.0),
            # Verified by its Stripe-Signature inside payment-service; Stripe sends no JWT.
            R("/webhooks/stripe", public=True),
            # the hosted checkout page and the button script (no JWT: bound to one payment)
            R("/checkout", public=True, web=True),
            # PayPal's transmission signature and SSLCommerz's verify_sign + validation API.
            R("/webhooks/paypal", public=True),
            R("/webhooks/sslcommerz", public=True),
            # The customer's browser back from PayPal / SSLCommerz (no JWT: bound to a payment
            # and to the provider's own object, moves money only for an approved payer).
            R("/provider-return", public=True),
        ),
        produces=(t.PAYMENT_EVENT, t.PAYMENT_DLQ, t.AUDIT_EVENT),
        consumes=(t.ORDER_CREATE, t.ORDER_EVENT, t.CONFIG_CHANGED),
    ),
    ServiceSpec(
        "transaction",
        8003,
        "transactions",
        title="double-entry ledger, fees, limits, transaction history",
        routes=(R("/transactions"), R("/balance"), R("/admin/ledger")),
        produces=(t.TRANSACTION_DLQ,),
        consumes=(t.PAYMENT_EVENT, t.ORDER_EVENT, t.CONFIG_CHANGED),
    ),
    ServiceSpec(
        "notification",
        8004,
        "notifications",
        title="email, SMS and push, templates, merchant webhooks out, dead letters",
        # `/webhooks` is the merchant's delivery log (JWT at the edge); the providers' callbacks
        # (`/webhooks/stripe`, …) are longer prefixes of payment-service and match first.
        routes=(
            R("/notifications"),
            R("/admin/notifications"),
            R("/webhooks/settings"),
            R("/webhooks"),
        ),
        produces=(t.NOTIFICATION_DLQ, t.AUDIT_EVENT),
        consumes=(t.PAYMENT_EVENT, t.ORDER_EVENT, t.ORDER_CREATE),
    ),
    ServiceSpec(
        "audit",
        8005,
        "audit",
        title="tamper-evident, masked audit trail",
        routes=(R("/admin/audit"),),
        produces=(t.AUDIT_DLQ,),
        consumes=t.EVENT_TOPICS,
    ),
    ServiceSpec(
        "exchange-rate",
        8006,
        "rates",
        title="FX rates, history, conversion, locked quotes",
        routes=(R("/rates"), R("/convert"), R("/fx"), R("/admin/rates")),
        produces=(t.AUDIT_EVENT,),
    ),
    ServiceSpec(
        "admin",
        8007,
        "admin",
        title="operator console, configuration, suite health",
        routes=(
            R("/admin/config"),
            R("/admin/users"),
            R("/admin/analytics"),
            R("/admin/health"),
            # the operator console and the merchant dashboard (cookie sessions, no JWT header)
            R("/admin", upstream="/console", public=True, web=True),
            R("/dashboard", public=True, web=True),
        ),
        produces=(t.CONFIG_CHANGED, t.AUDIT_EVENT),
    ),
    ServiceSpec(
        "order",
        8008,
        "orders",
        title="orders and their status, driven by payment events",
        routes=(R("/orders"),),
        produces=(t.ORDER_CREATE, t.ORDER_EVENT, t.ORDER_DLQ),
        consumes=(t.PAYMENT_EVENT,),
    ),
)
SERVICES_BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}
DEFAULT_SERVICE_URLS: dict[str, str] = {s.name: s.default_url for s in SERVICES}
# Replica i of a service listens on its port + 10·i (payment: 8002, 8012, 8022): the ports stay
# below the next service's in every decade, so no two replicas of two services ever collide.
REPLICA_PORT_STEP = 10


def replica_port(name: str, index: int) -> int:
    """The port of replica `index` (0 = the service's own) of service `name`."""
    return spec_for(name).port + REPLICA_PORT_STEP * index


def replica_urls_env(name: str) -> str:
    """The gateway variable listing a service's instances: `GATEWAY_PAYMENT_URLS`."""
    return spec_for("gateway").env_prefix + spec_for(name).name.upper().replace("-", "_") + "_URLS"


def spec_for(name: str) -> ServiceSpec:
    """Look a service up by name ("user"), folder ("user-service") or package ("user_service")."""
    for spec in SERVICES:
        if name in (spec.name, spec.folder, spec.package):
            return spec
    known = ", ".join(s.name for s in SERVICES)
    raise KeyError(f"unknown service {name!r}; known: {known}")


def _shell(name: str) -> str:
    """`app=… port=… schema=… flags=…` for the container entrypoint to `eval`."""
    spec = spec_for(name)
    values = {
        "app": spec.app,
        "port": str(spec.port),
        "folder": spec.folder,
        "flags": " ".join(spec.uvicorn_args),
    }
    return "\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


if __name__ == "__main__":  # python -m paygate_common.services shell <service>
    if len(sys.argv) != 3 or sys.argv[1] != "shell":
        sys.exit("usage: python -m paygate_common.services shell <service>")
    try:
        print(_shell(sys.argv[2]))
    except KeyError as exc:
        sys.exit(str(exc))
