"""The limits reservation alone: CPU and latency of `POST /internal/limits/reservations` per call.

    uv run python bench/checkout/reserve.py [--calls 400] [--concurrency 10]

Starts PostgreSQL, Redis, Kafka (Tansu), localstripe and the SMTP sink (the devstack components,
in a temporary directory) and transaction-service alone, then reserves through the same client
order-service uses (`paygate_common.limits.LimitsClient`: one keep-alive connection pool,
service tokens): `--calls` sequential reservations, then as many `--concurrency` at a time, each
for a user of its own (no limit is hit). Reports per reservation: client latency p50/p99 and CPU
ms of transaction-service, PostgreSQL (its backends included) and this client process (the
caller's share, what order-service pays), from /proc as `run.py` counts it, less what the
processes burn while idle (measured for 10 s first). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from run import cpu_seconds, ms, pct

from paygate_common.limits import LimitsClient
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


async def measure(
    client: LimitsClient, roots: dict[str, int | None], calls: int, concurrency: int
) -> dict[str, Any]:
    async def one() -> float:
        started = time.perf_counter()
        await client.reserve(
            reference_id=uuid.uuid4(), user_id=uuid.uuid4(), amount=1000, currency="usd"
        )
        return time.perf_counter() - started

    for _ in range(30):  # warm-up: connections, statement caches, the limits config cache
        await one()
    # What the processes burn per second doing nothing (consumer fetches, worker polls): taken
    # off the loaded windows, so a faster run is not credited with a smaller share of it.
    before = cpu_seconds(roots)
    quiet = time.perf_counter()
    await asyncio.sleep(10)
    quiet = time.perf_counter() - quiet
    after = cpu_seconds(roots)
    idle = {k: (after[k] - before[k]) / quiet for k in after}
    out: dict[str, Any] = {
        "idle_cpu_ms_per_second": {k: round(v * 1000, 1) for k, v in idle.items()}
    }
    for mode, width in (("sequential", 1), ("concurrent", concurrency)):
        latencies: list[float] = []
        before = cpu_seconds(roots)
        wall = time.perf_counter()
        for _ in range(calls // width):
            latencies.extend(await asyncio.gather(*(one() for _ in range(width))))
        wall = time.perf_counter() - wall
        after = cpu_seconds(roots)
        done = len(latencies)
        cpu = {
            k: round(max(0.0, after[k] - before[k] - idle[k] * wall) * 1000 / done, 3)
            for k in after
        }
        cpu["client"] = cpu.pop("load generator")
        out[mode] = {
            "reservations": done,
            "per_second": round(done / wall, 1),
            "latency_ms": {"p50": ms(pct(latencies, 50)), "p99": ms(pct(latencies, 99))},
            "cpu_ms_per_reservation": cpu,
            "cpu_ms_per_reservation_total": round(sum(cpu.values()), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="paygate-bench-reserve-"))
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
    result: dict[str, Any] = {"label": args.label, "loadavg_before": os.getloadavg()}
    try:
        service = stack.start_service("transaction", {"LOG_LEVEL": "WARNING"})
        os.environ.update(stack.env)
        from order_service.settings import Settings  # the caller's settings, as in POST /orders

        roots: dict[str, int | None] = {"transaction": service.pid, "postgres": pg.pid}

        async def scenario() -> dict[str, Any]:
            client = LimitsClient(Settings(), base_url=service.url)
            try:
                return await measure(client, roots, args.calls, args.concurrency)
            finally:
                await client.aclose()

        result.update(asyncio.run(scenario()))
    finally:
        stack.stop_services()
        for c in reversed(components):
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
