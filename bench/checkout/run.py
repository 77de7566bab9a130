"""Checkout benchmark: orders through the gateway, created → paid, with every consumer running.

    uv run python bench/checkout/run.py [--rate 200] [--duration 30] [--idle-orders 50]

Starts its own PostgreSQL, Redis, Kafka (Tansu), localstripe and SMTP sink (the devstack
components, in a temporary directory) and, through the devstack launcher's `PaygateStack`,
every service a checkout touches: user, order, payment, notification (receipts and merchant
webhooks: every customer registers a webhook endpoint served by this process), transaction
(limits and the ledger), audit, and the gateway in front. Two measurements:

- **idle**: `--idle-orders` orders one after the other with the Stripe connector against
  localstripe (as `make run` starts it); create-to-paid is outside-in: from sending
  `POST /orders` to the first moment the order row reads `paid` (polled every 2 ms).
- **load**: an open loop offering `--rate` orders per second for `--duration` seconds with the
  sandbox connector (payment-service restarted with it), whether or not earlier orders have
  settled. Reports settled orders/s, create latency p50/p99 (client side), create-to-paid
  p50/p99 (client send → the order row's `updated_at` when it became paid), CPU ms per order of
  every process (utime+stime of its process tree from /proc, including exited children such as
  PostgreSQL backends), the machine's steal time from /proc/stat, and checks exactly-once:
  every created order is paid, with one payment, one provider charge, one ledger transaction
  and one `payment.succeeded` webhook each (0 lost, 0 duplicated).

Results go to bench/checkout/results.{json,md} unless `--no-write`. `--profile` samples every
service with py-spy during the load (needs `py-spy` on PATH or `--py-spy PATH`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

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
# Start order: what others call first (user for JWKS, transaction for limits), the gateway last.
SERVICES = ("user", "transaction", "audit", "notification", "payment", "order", "gateway")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --- /proc accounting -------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (ppid, CPU seconds of the process and its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        table[int(entry)] = (ppid, (utime + stime + cutime + cstime) / CLK_TCK)
    return table


def cpu_seconds(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process tree, and of this process alone."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    usage: dict[str, float] = {}
    for name, root in roots.items():
        total, todo = 0.0, [root] if root else []
        while todo:
            pid = todo.pop()
            if pid in table:
                total += table[pid][1]
                todo.extend(children.get(pid, ()))
        usage[name] = total
    own = Path("/proc/self/stat").read_text()
    fields = own[own.rindex(")") + 2 :].split()
    usage["load generator"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return usage


def cpu_stat() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


def steal_share(before: list[int], after: list[int]) -> float:
    delta = [b - a for a, b in zip(before, after, strict=True)]
    return round(100 * delta[7] / max(sum(delta), 1), 2)


# --- the customers ----------------------------------------------------------------------------


class WebhookReceiver:
    """The merchants' webhook endpoint: counts deliveries by webhook-id and by order."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, str, str | None]] = []  # (webhook-id, type, order)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        data = body.get("data") or {}
        self.deliveries.append(
            (request.headers.get("webhook-id", ""), body.get("type"), data.get("order_id"))
        )
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def succeeded_by_order(self) -> Counter[str]:
        """Distinct `payment.succeeded` deliveries per order (a retry reuses its webhook-id)."""
        seen = {(wid, order) for wid, kind, order in self.deliveries if kind == "payment.succeeded"}
        return Counter(order for _, order in seen if order)


async def setup_users(
    session: aiohttp.ClientSession, api: str, count: int, webhook_url: str
) -> list[str]:
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
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(
            f"{api}/users/me/payment-methods",
            json={"provider": "stripe", "token": "pm_card_visa", "make_default": True},
            headers=headers,
        ) as r:
            assert r.status == 201, await r.text()
        async with session.put(
            f"{api}/webhooks/settings",
            json={"url": webhook_url, "enabled_events": ["payment.*"]},
            headers=headers,
        ) as r:
            assert r.status == 200, await r.text()
        tokens.append(token)
    return tokens


async def create_order(
    session: aiohttp.ClientSession, api: str, token: str, i: int
) -> tuple[str, float, float]:
    """POST /orders; returns (id, wall-clock send time, latency in seconds)."""
    sent_wall, started = time.time(), time.perf_counter()
    async with session.post(
        f"{api}/orders",
        json={"amount": 100 + i % 900, "currency": "usd"},
        headers={
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": f"bench-{uuid.uuid4().hex}",
        },
    ) as r:
        body = await r.json()
        if r.status != 201:
            raise RuntimeError(f"create failed: {r.status} {body}")
    return body["id"], sent_wall, time.perf_counter() - started


# --- idle: one order at a time, outside-in ----------------------------------------------------


TIMELINE = """
SELECT o.created_at AS order_row,
  (SELECT published_at FROM orders.outbox WHERE key = o.id::text AND event_type = 'order.created')
    AS order_create_published,
  p.created_at AS payment_row,
  (SELECT min(started_at) FROM payments.payment_attempts WHERE payment_id = p.id) AS attempt_started,
  (SELECT max(finished_at) FROM payments.payment_attempts WHERE payment_id = p.id)
    AS attempt_finished,
  (SELECT min(published_at) FROM payments.outbox
    WHERE key = p.id::text AND event_type = 'payment.succeeded') AS payment_event_published,
  o.updated_at AS order_paid
FROM orders.orders o JOIN payments.payments p ON p.order_id = o.id WHERE o.id = $1
"""


async def idle_run(api: str, dsn: str, tokens: list[str], orders: int) -> dict[str, Any]:
    """Sequential orders; also where each one's time went (from the rows' timestamps)."""
    to_paid: list[float] = []
    create: list[float] = []
    steps: dict[str, list[float]] = {}
    # Other work on the machine skews every number: say how busy it was while they were taken.
    load_start, cpu_start = [round(v, 2) for v in os.getloadavg()], cpu_stat()
    conn = await asyncpg.connect(dsn)
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(orders + 3):  # three warm-up orders are not counted
                started = time.perf_counter()
                order_id, _, latency = await create_order(session, api, tokens[i % len(tokens)], i)
                oid = uuid.UUID(order_id)
                deadline = started + 30
                while True:
                    status = await conn.fetchval(
                        "SELECT status FROM orders.orders WHERE id = $1", oid
                    )
                    if status not in (None, "pending"):
                        break
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"order {order_id} not settled in 30 s")
                    await asyncio.sleep(0.002)
                if status != "paid":
                    raise RuntimeError(f"idle order {order_id} ended {status}")
                if i >= 3:
                    to_paid.append(time.perf_counter() - started)
                    create.append(latency)
                    row = await conn.fetchrow(TIMELINE, oid)
                    if row is not None:
                        # An asyncpg Record iterates over its values: ask for the keys.
                        names = row.keys()
                        marks = [(k, row[k]) for k in names if row[k] is not None]
                        for (_, a), (name, b) in itertools.pairwise(marks):
                            steps.setdefault(name, []).append((b - a).total_seconds())
                await asyncio.sleep(0.2)  # idle between orders: nothing else in flight
    finally:
        await conn.close()
    return {
        "orders": orders,
        "connector": "stripe (localstripe)",
        "loadavg_start": load_start,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "steal_percent": steal_share(cpu_start, cpu_stat()),
        "create_latency_ms": {"p50": ms(pct(create, 50)), "p99": ms(pct(create, 99))},
        "create_to_paid_ms": {
            "p50": ms(pct(to_paid, 50)),
            "p99": ms(pct(to_paid, 99)),
            "max": ms(max(to_paid)),
        },
        # Median time from the previous mark to this one (server clocks, transaction starts).
        "timeline_p50_ms": {k: ms(pct(v, 50)) for k, v in steps.items()},
    }


# --- load: an open loop at a fixed offered rate -----------------------------------------------


async def offer(
    api: str, tokens: list[str], rate: float, duration: float
) -> tuple[dict[str, float], list[float], int, float]:
    """Start an order every 1/rate s (Poisson arrivals) for `duration` s; never wait for one."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    failures = 0
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal failures
            try:
                order_id, at, latency = await create_order(session, api, tokens[i % len(tokens)], i)
            except Exception as exc:
                failures += 1
                if failures <= 5:
                    print(f"create failed: {exc}")
                return
            sent[order_id] = at
            latencies.append(latency)

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        next_at, i = start, 0
        while next_at - start < duration:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            next_at += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return sent, latencies, failures, elapsed


async def wait_settled(
    conn: asyncpg.Connection, ids: list[uuid.UUID], limit_s: float
) -> list[asyncpg.Record]:
    deadline = time.monotonic() + limit_s
    while True:
        rows = await conn.fetch(
            "SELECT id, status, created_at, updated_at FROM orders.orders WHERE id = ANY($1::uuid[])",
            ids,
        )
        pending = sum(1 for r in rows if r["status"] == "pending")
        if len(rows) == len(ids) and not pending:
            return rows
        if time.monotonic() > deadline:
            print(f"{pending} orders still pending after {limit_s}s")
            return rows
        await asyncio.sleep(0.25)


async def exactly_once(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[str, int]:
    """Per created order: how many payments, provider charges and ledger transactions."""
    q = {
        "payments": "SELECT order_id, count(*) FROM payments.payments "
        "WHERE order_id = ANY($1::uuid[]) GROUP BY order_id",
        "provider_charges": "SELECT p.order_id, count(*) FROM payments.sandbox_charges c "
        "JOIN payments.payments p ON p.id = c.payment_id "
        "WHERE p.order_id = ANY($1::uuid[]) AND c.status = 'approved' GROUP BY p.order_id",
        "ledger_transactions": "SELECT order_id, count(*) FROM transactions.transactions "
        "WHERE order_id = ANY($1::uuid[]) GROUP BY order_id",
    }
    result: dict[str, int] = {}
    for name, sql in q.items():
        counts = {r[0]: r[1] for r in await conn.fetch(sql, ids)}
        result[f"{name}_missing"] = sum(1 for i in ids if counts.get(i, 0) == 0)
        result[f"{name}_duplicated"] = sum(c - 1 for c in counts.values() if c > 1)
    return result


async def wait_webhooks(receiver: WebhookReceiver, ids: list[str], limit_s: float) -> Counter[str]:
    deadline = time.monotonic() + limit_s
    while True:
        by_order = receiver.succeeded_by_order()
        if all(by_order.get(i, 0) for i in ids) or time.monotonic() > deadline:
            return by_order
        await asyncio.sleep(0.25)


async def load_run(
    args: argparse.Namespace,
    api: str,
    dsn: str,
    tokens: list[str],
    receiver: WebhookReceiver,
    roots: dict[str, int | None],
    profile: Any,
) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        print(f"offering {args.rate} orders/s for {args.duration} s")
        receiver.deliveries.clear()
        cpu_before, stat_before = cpu_seconds(roots), cpu_stat()
        samplers = profile.start() if profile else []
        sent, latencies, failures, create_elapsed = await offer(
            api, tokens, args.rate, args.duration
        )
        ids = [uuid.UUID(i) for i in sent]
        rows = await wait_settled(conn, ids, limit_s=max(120, len(ids) / 10))
        cpu_after, stat_after = cpu_seconds(roots), cpu_stat()
        profiles = profile.stop(samplers) if profile else {}
        checks = await exactly_once(conn, ids)
        settle_by = time.monotonic() + 60  # the ledger may still be catching up: wait for it
        while checks["ledger_transactions_missing"] and time.monotonic() < settle_by:
            await asyncio.sleep(1)
            checks = await exactly_once(conn, ids)
        by_order = await wait_webhooks(receiver, list(sent), limit_s=60)
    finally:
        await conn.close()
    n = max(len(ids), 1)
    cpu = {k: round(1000 * (cpu_after[k] - cpu_before.get(k, 0.0)) / n, 2) for k in cpu_after}
    statuses = Counter(r["status"] for r in rows)
    paid = [r for r in rows if r["status"] == "paid"]
    to_paid = [r["updated_at"].timestamp() - sent[str(r["id"])] for r in paid]
    first = min(sent.values()) if sent else 0.0
    last = max((r["updated_at"].timestamp() for r in paid), default=first)
    window = max(last - first, 1e-9)
    webhooks_missing = sum(1 for i in sent if by_order.get(i, 0) == 0)
    webhooks_duplicated = sum(c - 1 for c in by_order.values() if c > 1)
    return {
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "orders": len(ids),
        "create_failures": failures,
        "created_per_second": round(len(ids) / create_elapsed, 1),
        "settled_per_second": round(len(paid) / window, 1),
        "settle_window_s": round(window, 2),
        "create_latency_ms": {"p50": ms(pct(latencies, 50)), "p99": ms(pct(latencies, 99))},
        "create_to_paid_ms": {
            "p50": ms(pct(to_paid, 50)),
            "p99": ms(pct(to_paid, 99)),
            "mean": ms(statistics.fmean(to_paid)) if to_paid else None,
        },
        "statuses": dict(statuses),
        "lost": len(ids) - len(paid),
        "duplicated": checks["payments_duplicated"]
        + checks["provider_charges_duplicated"]
        + checks["ledger_transactions_duplicated"],
        "checks": {
            **checks,
            "webhooks_missing": webhooks_missing,
            "webhooks_duplicated": webhooks_duplicated,
        },
        "cpu_ms_per_order": cpu,
        "cpu_ms_per_order_total": round(sum(cpu.values()), 2),
        "steal_percent": steal_share(stat_before, stat_after),
        "profile_top_self": profiles,
    }


# --- py-spy -----------------------------------------------------------------------------------


class Profiler:
    """py-spy on every service process (raw collapsed stacks) while the load runs."""

    def __init__(self, py_spy: str, stack: PaygateStack, out_dir: Path) -> None:
        self.py_spy = py_spy
        self.stack = stack
        self.out_dir = out_dir

    def start(self) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
        samplers = []
        for proc in self.stack.started:
            out = self.out_dir / f"profile-{proc.name}.txt"
            cmd = [self.py_spy, "record", "--pid", str(proc.pid), "--rate", "100"]
            cmd += ["--subprocesses", "--nonblocking", "--format", "raw", "-o", str(out)]
            popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samplers.append((proc.name, popen, out))
        return samplers

    def stop(
        self, samplers: list[tuple[str, subprocess.Popen[bytes], Path]]
    ) -> dict[str, dict[str, list[str]]]:
        """Per service: the top self frames and the top inclusive frames (our code only)."""
        top: dict[str, dict[str, list[str]]] = {}
        for name, sampler, out in samplers:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
            self_counts: Counter[str] = Counter()
            incl: Counter[str] = Counter()
            total = 0
            for line in out.read_text().splitlines() if out.exists() else []:
                stack, _, count = line.rpartition(" ")
                n = int(count)
                frames = stack.split(";")
                if any("select" in f and "selectors.py" in f for f in frames[-2:]):
                    continue  # the event loop waiting: idle, not CPU
                total += n
                self_counts[frames[-1]] += n
                for frame in set(frames):
                    incl[frame] += n
            top[name] = {
                "samples": [str(total)],
                "self": [
                    f"{100 * c / max(total, 1):.1f}% {f}" for f, c in self_counts.most_common(15)
                ],
                "inclusive": [
                    f"{100 * c / max(total, 1):.1f}% {f}" for f, c in incl.most_common(60)
                ],
            }
            keep = self.out_dir / "profiles"
            keep.mkdir(exist_ok=True)
            if out.exists():
                shutil.copy(out, keep / out.name)
        return top


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="offered orders per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--idle-orders", type=int, default=50, help="0 skips the idle run")
    parser.add_argument("--no-load", action="store_true", help="only the idle run")
    parser.add_argument("--label", default="", help="a name for this run in results.json")
    parser.add_argument("--no-write", action="store_true", help="leave results.{json,md} alone")
    parser.add_argument("--profile", action="store_true", help="py-spy every service under load")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
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
        "GATEWAY_RATE_LIMIT_ANON": "1000000/second",
        "GATEWAY_RATE_LIMIT_USER": "1000000/second",
        "GATEWAY_RATE_LIMIT_AUTH": "1000000/second",
        "NOTIFICATION_SERVICE_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "LOG_LEVEL": "WARNING",
    }
    stripe_env = {"PAYMENT_SERVICE_CONNECTOR": "stripe"}
    sandbox_env = {
        "PAYMENT_SERVICE_CONNECTOR": "sandbox",
        "PAYMENT_SERVICE_SANDBOX_LATENCY_MS": "0",
    }
    receiver = WebhookReceiver()
    uptime = Path("/proc/loadavg").read_text().split()[:3]
    result: dict[str, Any] = {}
    try:
        for name in SERVICES:
            stack.start_service(name, {**env, **(stripe_env if name == "payment" else {})})
        api = stack.url("gateway") + "/api/v1"
        dsn = stack.database_url.replace("postgresql+asyncpg://", "postgresql://")
        print(f"stack up in {tmp}; setting up {args.users} customers")

        async def scenario() -> dict[str, Any]:
            await receiver.start()
            try:
                async with aiohttp.ClientSession() as session:
                    tokens = await setup_users(session, api, args.users, receiver.url)
                out: dict[str, Any] = {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "label": args.label,
                    "machine": {
                        "cores": os.cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                        "loadavg_before": uptime,
                    },
                    "services": list(SERVICES),
                    "customers": args.users,
                }
                if args.idle_orders:
                    print(f"idle: {args.idle_orders} sequential orders (localstripe)")
                    out["idle"] = await idle_run(api, dsn, tokens, args.idle_orders)
                    print(json.dumps(out["idle"]))
                if not args.no_load:
                    # The load runs on the sandbox connector: localstripe is one Python process.
                    payment = next(p for p in stack.started if p.name == "payment")
                    payment.stop()
                    stack.started.remove(payment)
                    stack.start_service("payment", {**env, **sandbox_env})
                    roots: dict[str, int | None] = {p.name: p.pid for p in stack.started}
                    roots.update(postgres=pg.pid, kafka=kafka.pid, redis=redis.pid)
                    profiler = Profiler(args.py_spy, stack, tmp) if args.profile else None
                    out["load"] = await load_run(args, api, dsn, tokens, receiver, roots, profiler)
                return out
            finally:
                await receiver.stop()

        result = asyncio.run(scenario())
    finally:
        stack.stop_services()
        for c in reversed(components):
            c.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items()}, indent=2, default=str))
    if not args.no_write:
        (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (HERE / "results.md").write_text(render(result))


def render(r: dict[str, Any]) -> str:
    lines = [
        "# Checkout benchmark results",
        "",
        f"Measured {r['date']} on {r['machine']['cores']} cores ({r['machine']['platform']}, "
        f"Python {r['machine']['python']}), load average before the run "
        f"{' '.join(r['machine']['loadavg_before'])}. Every process (PostgreSQL, Redis, Tansu, "
        f"localstripe, the SMTP sink, the services {', '.join(r['services'])}, the load "
        "generator and the merchants' webhook endpoint) on the same machine.",
        "",
    ]
    if "idle" in r:
        i = r["idle"]
        lines += [
            f"## Idle: {i['orders']} sequential orders, {i['connector']}",
            "",
            "| metric | value |",
            "| --- | --- |",
            f"| create latency p50 / p99 | {i['create_latency_ms']['p50']} ms / {i['create_latency_ms']['p99']} ms |",
            f"| create-to-paid p50 / p99 (outside-in) | {i['create_to_paid_ms']['p50']} ms / {i['create_to_paid_ms']['p99']} ms |",
            f"| load average at start / end (1, 5, 15 min) | {i.get('loadavg_start')} / {i.get('loadavg_end')} |",
            f"| steal | {i.get('steal_percent')} % |",
            "",
            "Median ms from the previous row timestamp to this one (`timeline_p50_ms`):",
            "",
            "| step | ms |",
            "| --- | ---: |",
            *(f"| {k} | {v} |" for k, v in i.get("timeline_p50_ms", {}).items()),
            "",
        ]
    if "load" in r:
        x = r["load"]
        cpu = x["cpu_ms_per_order"]
        lines += [
            f"## Load: {x['offered_rate']} orders/s offered (open loop) for {x['duration_s']} s, sandbox connector",
            "",
            "| metric | value |",
            "| --- | --- |",
            f"| orders created | {x['orders']} ({x['create_failures']} create failures) |",
            f"| created per second | {x['created_per_second']} |",
            f"| **settled (paid) per second** | **{x['settled_per_second']}** |",
            f"| create latency p50 / p99 | {x['create_latency_ms']['p50']} ms / {x['create_latency_ms']['p99']} ms |",
            f"| create-to-paid p50 / p99 | {x['create_to_paid_ms']['p50']} ms / {x['create_to_paid_ms']['p99']} ms |",
            f"| final statuses | {x['statuses']} |",
            f"| not paid when the bench stopped waiting / duplicated | {x['lost']} / {x['duplicated']} |",
            f"| exactly-once checks | {x['checks']} |",
            f"| steal | {x['steal_percent']} % |",
            "",
            "CPU per order, by process (utime+stime of its process tree from /proc, over the run):",
            "",
            "| process | CPU ms per order |",
            "| --- | ---: |",
            *(f"| {k} | {v} |" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])),
            f"| **total** | **{x['cpu_ms_per_order_total']}** |",
            "",
        ]
    lines += [
        "An order not paid when the bench stopped waiting is still pending (counted, not lost:",
        "a create the gateway timed out on was often committed by order-service all the same,",
        "so an overloaded stack keeps working on orders the bench does not count).",
        "See PROFILE.md for where the time goes and the before/after table.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
