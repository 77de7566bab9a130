"""The provider stand-ins (PayPal, SSLCommerz) as `make run` components and as test fixtures."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from paygate_devstack import paypal_standin, sslcommerz_standin
from paygate_devstack.asgi import serve_asgi
from paygate_devstack.components import Component
from paygate_devstack.paypal_standin import PayPalStandIn
from paygate_devstack.process import ManagedProcess, pick_port
from paygate_devstack.sslcommerz_standin import SSLCommerzStandIn

# Fixed ports next to localstripe's 58420 keep `make run` URLs stable between runs.
DEFAULT_PORTS = {"paypal": 58430, "sslcommerz": 58431}
# A variable that, when set, means "use that real endpoint, start no stand-in".
REAL_ENDPOINT_VARIABLES = {"paypal": "PAYPAL_API_BASE", "sslcommerz": "SSLCOMMERZ_API_BASE"}

S = TypeVar("S", PayPalStandIn, SSLCommerzStandIn)


class StandInProcess(Component):
    """A stand-in as a child process of the launcher, state in `.paygate/<name>/`."""

    ready_timeout = 30.0

    def __init__(
        self, name: str, port: int, *, state_dir: Path, log_path: Path, probe_path: str
    ) -> None:
        self.name = name
        self.port = port
        self.state_dir = state_dir
        self.probe_path = probe_path
        module = {"paypal": paypal_standin, "sslcommerz": sslcommerz_standin}[name].__name__
        self.proc = ManagedProcess(
            name,
            [sys.executable, "-m", module, "--port", str(port), "--state-dir", str(state_dir)],
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}{self.probe_path}", timeout=1).status_code < 500


def provider_standins(state: Path, logs: Path, env: Mapping[str, str]) -> dict[str, Component]:
    """A stand-in for each provider whose real endpoint is not configured in `env`."""
    probes = {"paypal": paypal_standin.CERT_PATH, "sslcommerz": "/EasyCheckOut/none"}
    return {
        name: StandInProcess(
            name,
            pick_port(DEFAULT_PORTS[name]),
            state_dir=state / name,
            log_path=logs / f"{name}.log",
            probe_path=probes[name],
        )
        for name, variable in REAL_ENDPOINT_VARIABLES.items()
        if not env.get(variable)
    }


def provider_env(components: Mapping[str, Component], *, payment_url: str) -> dict[str, str]:
    """What services get to reach the running stand-ins; points PayPal's webhook at payment."""
    env: dict[str, str] = {}
    paypal = components.get("paypal")
    if paypal is not None:
        env.update(
            {
                "PAYPAL_API_BASE": paypal.url,
                "PAYPAL_CLIENT_ID": paypal_standin.CLIENT_ID,
                "PAYPAL_CLIENT_SECRET": paypal_standin.CLIENT_SECRET,
                "PAYPAL_WEBHOOK_ID": register_paypal_webhook(
                    paypal.url, f"{payment_url}/webhooks/paypal"
                ),
                "PAYPAL_WEBHOOK_CERT_HOSTS": f'["127.0.0.1:{paypal.port}"]',
                "PAYPAL_WEBHOOK_REQUIRE_HTTPS": "false",
            }
        )
    sslcommerz = components.get("sslcommerz")
    if sslcommerz is not None:
        env.update(
            {
                "SSLCOMMERZ_API_BASE": sslcommerz.url,
                "SSLCOMMERZ_STORE_ID": sslcommerz_standin.STORE_ID,
                "SSLCOMMERZ_STORE_PASSWORD": sslcommerz_standin.STORE_PASSWORD,
            }
        )
    return env


def register_paypal_webhook(
    api_base: str,
    url: str,
    *,
    client_id: str = paypal_standin.CLIENT_ID,
    client_secret: str = paypal_standin.CLIENT_SECRET,
) -> str:
    """The id of the PayPal webhook for `url`, created through PayPal's own API if needed."""
    with httpx.Client(base_url=api_base, timeout=10) as http:
        token = http.post(
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = http.post(
            "/v1/notifications/webhooks",
            json={"url": url, "event_types": [{"name": "*"}]},
            headers=headers,
        )
        if created.status_code == 201:
            return str(created.json()["id"])
        listed = http.get("/v1/notifications/webhooks", headers=headers).json()["webhooks"]
        return str(next(w["id"] for w in listed if w["url"] == url))


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class CallbackRecorder:
    """The merchant's side in tests: an ASGI app that records every request it gets
    (webhooks, IPNs, the browser landing on return/success URLs) and answers 200."""

    def __init__(self) -> None:
        self.calls: list[RecordedCall] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append(
            RecordedCall(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True)),
                headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
                body=body,
            )
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def to(self, path: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.path == path]


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[CallbackRecorder, str]]:
    """A `CallbackRecorder` on a free port: (recorder, base URL)."""
    recorder = CallbackRecorder()
    async with serve_asgi(recorder) as url:
        yield recorder, url


@dataclass
class RunningStandIn(Generic[S]):
    """A stand-in served in the test's event loop: its URL and its state, for assertions."""

    standin: S
    url: str

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`: what a webhook cert-host allow-list needs for this stand-in."""
        return urlsplit(self.url).netloc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.standin, name)


@asynccontextmanager
async def running_paypal(state_dir: Path) -> AsyncIterator[RunningStandIn[PayPalStandIn]]:
    standin = PayPalStandIn(state_dir=state_dir)
    async with serve_asgi(standin.app) as url:
        yield RunningStandIn(standin, url)
        standin.cancel_deliveries()


@asynccontextmanager
async def running_sslcommerz(state_dir: Path) -> AsyncIterator[RunningStandIn[SSLCommerzStandIn]]:
    standin = SSLCommerzStandIn(state_dir=state_dir)
    async with serve_asgi(standin.app) as url:
        yield RunningStandIn(standin, url)
        standin.cancel_deliveries()


__all__ = [
    "CallbackRecorder",
    "RecordedCall",
    "RunningStandIn",
    "StandInProcess",
    "provider_env",
    "provider_standins",
    "recording_server",
    "register_paypal_webhook",
    "running_paypal",
    "running_sslcommerz",
]
