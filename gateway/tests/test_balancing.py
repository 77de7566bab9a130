"""Several instances of one service: spread, eject on failure, probe back, retry only what is safe."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import METRICS_AUTH, Upstreams, free_port

from gateway.balancer import Balancer
from gateway.settings import GatewaySettings
from paygate_common.services import replica_urls_env
from paygate_devstack.events_testing import wait_for

HERE = Path(__file__).parent


class InstanceProcess:
    """`instance_app` under uvicorn in a subprocess: a real upstream that can be SIGKILLed."""

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**os.environ, "INSTANCE": self.name}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "instance_app:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )

        async def up() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(f"{self.url}/orders")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(up, timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@asynccontextmanager
async def instances(*names: str) -> AsyncIterator[list[InstanceProcess]]:
    procs = [InstanceProcess(n) for n in names]
    try:
        await asyncio.gather(*(p.start() for p in procs))
        yield procs
    finally:
        for p in procs:
            p.stop()


async def _spread(client: httpx.AsyncClient, n: int, **kwargs: Any) -> Counter[str]:
    """`n` GETs in waves of 8 concurrent ones; counts who answered (every one must be 200)."""
    seen: Counter[str] = Counter()
    for _ in range(n // 8):
        answers = await asyncio.gather(*(client.get("/api/v1/orders", **kwargs) for _ in range(8)))
        for r in answers:
            assert r.status_code == 200, r.text
            seen[r.json()["instance"]] += 1
    return seen


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    instances: dict[str, Any] = {
        i["url"]: i for i in (await client.get("/health")).json()["upstreams"]["order"]["instances"]
    }
    return instances


async def test_traffic_spreads_a_killed_instance_is_ejected_and_comes_back(
    make_gateway,  # type: ignore[no-untyped-def]
    upstreams: Upstreams,
) -> None:
    async with instances("a", "b") as (a, b):
        urls = {"order": [a.url, b.url]}
        async with (
            make_gateway(
                upstream_urls=urls, upstream_eject_seconds=0.5, upstream_eject_max_seconds=1.0
            ) as url,
            httpx.AsyncClient(base_url=url, headers=upstreams.auth(), timeout=10) as client,
        ):
            assert set(await _spread(client, 48)) == {"a", "b"}

            a.kill()
            # Every request still succeeds: a refused connection moves on to b, GET or POST.
            after_kill = await _spread(client, 48)
            assert after_kill == {"b": 48}
            post = await client.post("/api/v1/orders", json={"amount": 100})
            assert post.status_code == 200 and post.json()["instance"] == "b"
            health = await _health(client)
            assert health[a.url]["state"] in ("ejected", "probing")
            assert health[a.url]["ready"].startswith("down")
            assert health[b.url]["state"] == "healthy"
            assert (await client.get("/health")).json()["status"] == "degraded"

            restarted = InstanceProcess("a", a.port)
            await restarted.start()
            try:

                async def a_serves_again() -> bool:
                    return "a" in await _spread(client, 8)

                await wait_for(a_serves_again, timeout=30)
                assert (await _health(client))[a.url]["state"] == "healthy"
                assert set(await _spread(client, 48)) == {"a", "b"}
                metrics = (await client.get("/metrics", headers=METRICS_AUTH)).text
            finally:
                restarted.stop()
    labels = f'instance="{a.url}",service="order"'
    assert f"paygate_gateway_instance_ejections_total{{{labels}}}" in metrics
    ejections = next(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f"paygate_gateway_instance_ejections_total{{{labels}}}")
    )
    assert ejections >= 1
    assert f'paygate_gateway_instance_healthy{{instance="{b.url}",service="order"}} 1.0' in metrics


@asynccontextmanager
async def hanging_up_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An instance that reads each request and closes the connection without an answer: the
    request reached it, so only an idempotent one may be sent again elsewhere."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head.split(b"\r\n", 1)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_post_that_reached_an_instance_is_never_sent_to_another(
    make_gateway,  # type: ignore[no-untyped-def]
    upstreams: Upstreams,
) -> None:
    async with (
        # never ejected here: every request keeps a chance to land on the broken one
        instances("b") as (b,),
        hanging_up_upstream() as (broken, seen),
        make_gateway(
            upstream_urls={"order": [broken, b.url]}, upstream_eject_after_failures=1000
        ) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth(), timeout=10) as client,
    ):
        plain = [await client.post("/api/v1/orders", json={"n": i}) for i in range(16)]
        plain_seen = len(seen)
        keyed = [
            await client.post(
                "/api/v1/orders", json={"n": i}, headers={"Idempotency-Key": f"k-{i}"}
            )
            for i in range(16)
        ]
        gets = [await client.get("/api/v1/orders") for _ in range(16)]
    refused = [r for r in plain if r.status_code == 502]
    # Some plain POSTs landed on the instance that hung up: 502, and b never saw them again.
    assert refused and all(r.json()["code"] == "upstream_error" for r in refused)
    assert all(
        r.status_code == 200 and r.json()["instance"] == "b" for r in plain if r not in refused
    )
    # each of those reached the broken one exactly once, and the ones b answered never did
    assert plain_seen == len(refused)
    # With an Idempotency-Key (or a GET) the gateway may, and does, send it to b instead.
    assert [r.status_code for r in keyed] == [200] * 16
    assert [r.status_code for r in gets] == [200] * 16
    assert len(seen) > len(refused)  # keyed POSTs and GETs reached the broken one too


async def test_a_failing_instance_is_ejected_after_consecutive_5xx(
    make_gateway,  # type: ignore[no-untyped-def]
    upstreams: Upstreams,
) -> None:
    async with (
        instances("a", "b") as (a, b),
        make_gateway(
            upstream_urls={"order": [a.url, b.url]},
            upstream_eject_after_failures=2,
            upstream_eject_seconds=60,
        ) as url,
        httpx.AsyncClient(base_url=url, headers=upstreams.auth(), timeout=10) as client,
    ):
        # /orders/fail is a 500 on both; the instances' 5xx count per instance
        statuses = [(await client.get("/api/v1/orders/fail")).status_code for _ in range(4)]
        assert statuses == [500] * 4  # a 5xx is an answer: relayed, never retried
        health = await _health(client)
    # both ejected (each failed twice in a row): the gateway falls back to all (panic), so the
    # 5xx still reached the client rather than a made-up 503
    assert {i["state"] for i in health.values()} == {"ejected"}
    assert all(i["failures"] == 2 for i in health.values())


# --- the balancer on its own: selection and the health state machine -----------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _balancer(n: int, **kwargs: Any) -> tuple[Balancer, _Clock]:
    clock = _Clock()
    urls = [f"http://127.0.0.1:{9000 + i}" for i in range(n)]
    balancer = Balancer("order", urls, pool=lambda url: None, clock=clock, **kwargs)  # type: ignore[arg-type, return-value]
    return balancer, clock


def test_least_outstanding_wins_and_ties_rotate() -> None:
    balancer, _ = _balancer(3)
    a, b, c = balancer.instances
    a.outstanding, b.outstanding, c.outstanding = 2, 0, 1
    assert {balancer.pick() for _ in range(6)} == {b}
    b.outstanding = 2
    assert {balancer.pick() for _ in range(6)} == {c}
    a.outstanding = b.outstanding = c.outstanding = 0
    assert Counter(balancer.pick() for _ in range(30)) == {a: 10, b: 10, c: 10}
    # a retry never goes back to an instance this request already tried while another is left
    assert {balancer.pick((a, b)) for _ in range(5)} == {c}


def test_ejection_then_one_probe_then_back_or_out_for_longer() -> None:
    balancer, clock = _balancer(2, eject_after=3, eject_seconds=5, eject_max_seconds=12)
    a, b = balancer.instances
    for _ in range(2):
        balancer.failure(a)
    balancer.success(a)  # not consecutive: counting starts again
    for _ in range(3):
        balancer.failure(a)
    assert a.state == "ejected"
    assert {balancer.pick() for _ in range(10)} == {b}
    clock.now += 5
    assert balancer.pick() is a and a.state == "probing"  # the one probe
    assert {balancer.pick() for _ in range(10)} == {b}  # while it is in flight, nothing else
    balancer.failure(a)  # the probe failed: out for twice as long
    clock.now += 9.9
    assert {balancer.pick() for _ in range(10)} == {b}
    clock.now += 0.2
    assert balancer.pick() is a
    balancer.failure(a)  # 20 s capped at 12
    clock.now += 12
    assert balancer.pick() is a
    balancer.success(a)
    assert a.state == "healthy" and a.cooldown == 5
    assert {balancer.pick() for _ in range(10)} == {a, b}


def test_all_ejected_means_all_in_rotation_and_one_instance_is_never_ejected() -> None:
    balancer, _ = _balancer(2, eject_after=1, eject_seconds=60)
    a, b = balancer.instances
    balancer.failure(a)
    balancer.failure(b)
    assert a.state == b.state == "ejected"
    assert {balancer.pick() for _ in range(10)} <= {a, b}  # panic: still answered
    single, _ = _balancer(1, eject_after=1)
    for _ in range(5):
        single.failure(single.instances[0])
    assert single.instances[0].state == "healthy"  # the breaker alone decides for one


@pytest.fixture
def replica_env() -> Iterator[str]:
    name = replica_urls_env("exchange-rate")
    os.environ[name] = "http://10.0.0.1:8006/, http://10.0.0.2:8016"
    try:
        yield name
    finally:
        os.environ.pop(name)


def test_instance_urls_come_from_gateway_service_urls_variables(replica_env: str) -> None:
    assert replica_env == "GATEWAY_EXCHANGE_RATE_URLS"
    settings = GatewaySettings(
        service_urls={"order": "http://10.0.0.9:8008"},
        upstream_urls={"payment": "http://10.0.0.1:8002,http://10.0.0.2:8012"},
    )
    assert settings.instance_urls("exchange-rate") == [
        "http://10.0.0.1:8006",
        "http://10.0.0.2:8016",
    ]
    assert settings.instance_urls("payment") == ["http://10.0.0.1:8002", "http://10.0.0.2:8012"]
    assert settings.instance_urls("order") == ["http://10.0.0.9:8008"]  # one: as before
