"""Checkout benchmark: N orders through the gateway with the sandbox connector, created → paid.

    uv run python bench/checkout/run.py [--orders 2000] [--concurrency 64] [--users 50]

Starts its own PostgreSQL, Redis, Kafka (Tansu), localstripe and SMTP sink (the devstack
components, in a temporary directory) and every checkout service behind the gateway, with
`PAYMENT_SERVICE_CONNECTOR=sandbox`. Reports orders created per second, orders settled per
second, p50/p99 create latency (client side) and p50/p99 create-to-paid latency (the order
row's created_at → updated_at when it became paid), with the machine's core count, and checks
that every order settled exactly once. Results go to bench/checkout/results.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from paygate_devstack import TOPICS
from paygate_devstack.components import (
    STRIPE_TEST_KEY,
    Kafka,
    LocalStripe,
    Postgres,
    Redis,
    SmtpSink,
)
from paygate_devstack.process import free_port
from paygate_devstack.pytest_plugin import PaygateStack

HERE = Path(__file__).parent
PASSWORD = "bench-password-0123456789"
SERVICES = ("user", "order", "payment", "notification", "gateway")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def setup_users(session: aiohttp.ClientSession, api: str, count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        async with session.post(
            f"{api}/auth/signup", json={"email": email, "password": PASSWORD, "full_name": "Bench"}
        ) as r:
            assert r.status == 201, await r.text()
        async with session.post(
            f"{api}/auth/signin", json={"email": email, "password": PASSWORD}
        ) as r:
            token = (await r.json())["access_token"]
        async with session.post(
            f"{api}/users/me/payment-methods",
            json={"provider": "stripe", "token": "pm_card_visa", "make_default": True},
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 201, await r.text()
        tokens.append(token)
    return tokens


async def drive(
    api: str, tokens: list[str], orders: int, concurrency: int
) -> tuple[list[str], list[float], float]:
    latencies: list[float] = []
    ids: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(orders):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                token = tokens[i % len(tokens)]
                started = time.perf_counter()
                async with session.post(
                    f"{api}/orders",
                    json={"amount": 100 + i % 900, "currency": "usd"},
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": f"bench-{i}-{uuid.uuid4().hex}",
                    },
                ) as r:
                    body = await r.json()
                    if r.status != 201:
                        raise RuntimeError(f"create failed: {r.status} {body}")
                latencies.append(time.perf_counter() - started)
                ids.append(body["id"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return ids, latencies, elapsed


async def wait_settled(database_url: str, ids: list[str], limit_s: float) -> list[asyncpg.Record]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + limit_s
        while True:
            rows = await conn.fetch(
                "SELECT id, status, created_at, updated_at FROM orders.orders WHERE id = ANY($1::uuid[])",
                ids,
            )
            pending = [r for r in rows if r["status"] == "pending"]
            if len(rows) == len(ids) and not pending:
                return rows
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} orders still pending after {limit_s}s")
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def count_charges(database_url: str) -> tuple[int, int]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM payments.payments")
        distinct = await conn.fetchval("SELECT count(DISTINCT order_id) FROM payments.payments")
        return int(total), int(distinct)
    finally:
        await conn.close()


def cpu_seconds(stack: PaygateStack, pg: Postgres, kafka: Kafka, redis: Redis) -> dict[str, float]:
    """User+system CPU so far of each service, PostgreSQL (all its backends), Kafka and Redis."""
    import psutil

    def tree(pid: int | None) -> float:
        if pid is None:
            return 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    usage = {proc.name: tree(proc.pid) for proc in stack.started}
    usage["postgres"] = tree(pg.pid)
    usage["kafka"] = tree(kafka.pid)
    usage["redis"] = tree(redis.pid)
    # This process only: the services and components are its children and counted above.
    own = psutil.Process().cpu_times()
    usage["load generator"] = own.user + own.system
    return usage


def start_profilers(
    stack: PaygateStack, tmp: Path
) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    """py-spy on every service process (raw collapsed stacks), while the load runs."""
    samplers = []
    for proc in stack.started:
        out = tmp / f"profile-{proc.name}.txt"
        cmd = [
            "py-spy",
            "record",
            "--pid",
            str(proc.pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            str(out),
        ]
        samplers.append(
            (
                proc.name,
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                out,
            )
        )
    return samplers


def stop_profilers(
    samplers: list[tuple[str, subprocess.Popen[bytes], Path]],
) -> dict[str, list[str]]:
    """The ten functions with the most samples at the top of the stack, per service."""
    top: dict[str, list[str]] = {}
    for name, sampler, out in samplers:
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=30)
        counts: dict[str, int] = {}
        total = 0
        for line in out.read_text().splitlines() if out.exists() else []:
            stack, _, n = line.rpartition(" ")
            frame = stack.split(";")[-1]
            counts[frame] = counts.get(frame, 0) + int(n)
            total += int(n)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:10]
        top[name] = [f"{100 * n / max(total, 1):.1f}% {frame}" for frame, n in ranked]
        top[name].insert(0, f"{total} samples")
    return top


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--sandbox-latency-ms", type=int, default=0)
    parser.add_argument(
        "--no-write", action="store_true", help="do not overwrite results.{json,md}"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample every service with py-spy while orders are created (uv pip install py-spy)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="paygate-bench-"))
    logs = tmp / "logs"
    pg = Postgres(tmp / "pg", free_port(), log_path=logs / "postgres.log")
    redis = Redis(tmp / "redis", free_port(), log_path=logs / "redis.log")
    kafka = Kafka(free_port(), log_path=logs / "kafka.log", topics=TOPICS)
    stripe = LocalStripe(free_port(), log_path=logs / "stripe.log", api_key=STRIPE_TEST_KEY)
    smtp = SmtpSink(tmp / "mail", port=free_port())
    components = [pg, redis, kafka, stripe, smtp]
    for c in components:
        c.start()
    (tmp / "state").mkdir()
    stack = PaygateStack(
        postgres=pg, redis=redis, kafka=kafka, stripe=stripe, smtp=smtp, state_dir=tmp / "state"
    )
    env = {
        "PAYMENT_SERVICE_CONNECTOR": "sandbox",
        "PAYMENT_SERVICE_SANDBOX_LATENCY_MS": str(args.sandbox_latency_ms),
        "GATEWAY_RATE_LIMIT_ANON": "1000000/second",
        "GATEWAY_RATE_LIMIT_USER": "1000000/second",
        "GATEWAY_RATE_LIMIT_AUTH": "1000000/second",
        "LOG_LEVEL": "WARNING",
    }
    try:
        for name in SERVICES:
            stack.start_service(name, env)
        api = stack.url("gateway") + "/api/v1"
        print(f"stack up in {tmp}; setting up {args.users} customers")

        async def scenario() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session:
                tokens = await setup_users(session, api, args.users)
            print(f"driving {args.orders} orders at concurrency {args.concurrency}")
            t0 = datetime.now(UTC)
            samplers = start_profilers(stack, tmp) if args.profile else []
            cpu_before = cpu_seconds(stack, pg, kafka, redis)
            ids, latencies, create_elapsed = await drive(api, tokens, args.orders, args.concurrency)
            rows = await wait_settled(stack.database_url, ids, limit_s=max(120, args.orders / 10))
            cpu_after = cpu_seconds(stack, pg, kafka, redis)
            profiles = stop_profilers(samplers)
            cpu_ms_per_order = {
                name: round(1000 * (cpu_after[name] - cpu_before.get(name, 0.0)) / len(ids), 2)
                for name in cpu_after
            }
            statuses: dict[str, int] = {}
            for r in rows:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            paid = [r for r in rows if r["status"] == "paid"]
            to_paid = [(r["updated_at"] - r["created_at"]).total_seconds() for r in paid]
            first = min(r["created_at"] for r in rows)
            last = max(r["updated_at"] for r in paid) if paid else first
            settle_window = max((last - first).total_seconds(), 1e-9)
            payments, distinct = await count_charges(stack.database_url)
            return {
                "date": t0.isoformat(timespec="seconds"),
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "orders": args.orders,
                "concurrency": args.concurrency,
                "customers": args.users,
                "sandbox_latency_ms": args.sandbox_latency_ms,
                "created_per_second": round(args.orders / create_elapsed, 1),
                "settled_per_second": round(len(paid) / settle_window, 1),
                "create_latency_ms": {
                    "p50": round(pct(latencies, 50) * 1000, 2),
                    "p99": round(pct(latencies, 99) * 1000, 2),
                },
                "create_to_paid_ms": {
                    "p50": round(pct(to_paid, 50) * 1000, 2),
                    "p99": round(pct(to_paid, 99) * 1000, 2),
                    "mean": round(statistics.fmean(to_paid) * 1000, 2) if to_paid else None,
                },
                "statuses": statuses,
                "payments_rows": payments,
                "orders_charged": distinct,
                "lost": args.orders - len(rows),
                "duplicated": payments - distinct,
                "cpu_ms_per_order": cpu_ms_per_order,
                "profile_top_self": profiles,
            }

        result = asyncio.run(scenario())
    finally:
        stack.stop_services()
        for c in reversed(components):
            c.stop()
    print(json.dumps(result, indent=2))
    if not args.no_write:
        (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (HERE / "results.md").write_text(render(result))


def render(r: dict[str, Any]) -> str:
    cpu = r.get("cpu_ms_per_order", {})
    cpu_rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    cpu_total = round(sum(cpu.values()), 2)
    return f"""# Checkout benchmark results

Measured {r["date"]} on {r["machine"]["cores"]} cores ({r["machine"]["platform"]}, Python {r["machine"]["python"]}),
every process (PostgreSQL, Redis, Tansu, five services, the load generator) on the same machine.
Command: `uv run python bench/checkout/run.py --orders {r["orders"]} --concurrency {r["concurrency"]} --users {r["customers"]}`
(sandbox connector, latency {r["sandbox_latency_ms"]} ms).

| metric | value |
| --- | --- |
| orders | {r["orders"]} |
| created per second | {r["created_per_second"]} |
| settled (paid) per second | {r["settled_per_second"]} |
| create latency p50 / p99 | {r["create_latency_ms"]["p50"]} ms / {r["create_latency_ms"]["p99"]} ms |
| create-to-paid p50 / p99 | {r["create_to_paid_ms"]["p50"]} ms / {r["create_to_paid_ms"]["p99"]} ms |
| final statuses | {r["statuses"]} |
| lost orders | {r["lost"]} |
| duplicated payments | {r["duplicated"]} |

CPU per order, by process (user + system, from the first order created until all settled):

| process | CPU ms per order |
| --- | ---: |
{cpu_rows}
| **total** | **{cpu_total}** |

Target: 1,000 settled orders per second on 2 cores with p99 create-to-paid under 500 ms.
See PROFILE.md for where the time goes.
"""


if __name__ == "__main__":
    main()
