"""Payment executor benchmark: the executor of a given revision drains payments against localstripe.

    uv run python bench/executor/run.py [--payments 600] [--idle 30] [--before REV] [--rounds 2]

Starts its own PostgreSQL and, for every run, a fresh localstripe (the devstack components, in
a temporary directory).
For each variant — `before` (payment-service/src of `--before`, default the merge base with
main, extracted with `git archive`) and `after` (this working tree) — and each round, in
alternation (before, after, before, after, ...), on a fresh database:

- a child process runs only that variant's `PaymentExecutor` loops (`executor.workers()` with
  LISTEN on the work channel, the variant's own default settings), nothing else;
- **idle**: `--idle` payments one after the other, each inserted with the NOTIFY the intake
  sends; per payment, row created → attempt started (`payment_attempts.started_at -
  payments.created_at`) and → `succeeded` (`payments.updated_at - created_at`), DB clocks;
- **load**: `--payments` payments inserted at once (one statement + NOTIFY), then polled until
  every one is final; payments/s, and CPU ms per payment of the executor process, of
  PostgreSQL (its process tree, exited backends included) and of localstripe, from /proc;
- checks exactly-once: every payment `succeeded`, with one attempt and its own provider
  reference.

Every payment carries a token (`pm_card_visa`): no user-service lookup, the executor alone is
measured. Results go to bench/executor/results.{json,md} unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
ALEMBIC_INI = ROOT / "payment-service" / "alembic.ini"
WORK_CHANNEL = "paygate_payment_work"
FINAL = ("succeeded", "failed", "cancelled", "requires_action", "requires_capture")


def _checkout_bench() -> Any:
    """bench/checkout/run.py's /proc accounting and percentiles (one implementation)."""
    spec = importlib.util.spec_from_file_location("checkout_bench", HERE.parent / "checkout/run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the child: one variant's executor loops, nothing else -------------------------------------


async def drain(database_url: str, stripe_base: str, stripe_key: str) -> None:
    """Run the executor's loops until stdin closes; print `ready` once they LISTEN."""
    from paygate_common.db import create_engine, create_sessionmaker
    from paygate_common.http import ServiceClient
    from paygate_common.worker import running
    from paygate_devstack.events_testing import wait_for
    from payment_service.connectors import build_connectors
    from payment_service.domain.payment_context import UserDirectory
    from payment_service.settings import Settings
    from payment_service.workers.executor import PaymentExecutor

    settings = Settings(
        environment="test",
        log_json=False,
        log_level="WARNING",
        database_url=database_url,
        stripe_api_base=stripe_base,
        stripe_api_key=stripe_key,
        service_urls={"user": "http://127.0.0.1:9"},  # never called: every payment has a token
    )
    engine = create_engine(settings)
    providers = build_connectors(settings, engine=engine)
    connector, transport = providers[settings.connector]
    users = ServiceClient(settings, target="user", retries=0)
    executor = PaymentExecutor(
        settings=settings,
        sessionmaker=create_sessionmaker(engine),
        connector=connector,
        transport=transport,
        users=UserDirectory(users),
        providers=providers,
    )
    workers = executor.workers(engine=engine, channel=WORK_CHANNEL)
    async with running(workers):
        await wait_for(lambda: all(w.listening for w in workers if w.channel), interval=0.01)
        print(f"ready {len([w for w in workers if w.channel])}", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it
    await users.aclose()
    for _, provider_transport in providers.values():
        await provider_transport.aclose()
    await engine.dispose()


# --- the parent ------------------------------------------------------------------------------

_INSERT = """
WITH added AS (
  INSERT INTO payments.payments (id, user_id, amount, currency, provider, status,
                                 payment_method_token, correlation_id)
  SELECT gen_random_uuid(), gen_random_uuid(), 1000 + n, 'usd', 'stripe', 'created',
         'pm_card_visa', $2 || '-' || n
  FROM generate_series(1, $1) AS n
  RETURNING id
)
SELECT array_agg(id) AS ids, pg_notify('paygate_payment_work', '') FROM added
"""


async def idle_phase(conn: asyncpg.Connection, count: int) -> dict[str, Any]:
    started_ms: list[float] = []
    settled_ms: list[float] = []
    for i in range(count):
        async with conn.transaction():
            [payment_id] = (await conn.fetchrow(_INSERT, 1, f"idle-{i}"))["ids"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            row = await conn.fetchrow(
                """SELECT p.status,
                          extract(epoch FROM a.started_at - p.created_at) * 1000 AS started,
                          extract(epoch FROM p.updated_at - p.created_at) * 1000 AS settled
                   FROM payments.payments p
                   LEFT JOIN payments.payment_attempts a ON a.payment_id = p.id
                   WHERE p.id = $1""",
                payment_id,
            )
            if row["status"] in FINAL:
                started_ms.append(float(row["started"]))
                settled_ms.append(float(row["settled"]))
                break
            await asyncio.sleep(0.002)
        else:
            raise RuntimeError(f"idle payment {payment_id} not settled in 15 s")
    return {"row_to_attempt_ms": started_ms, "row_to_succeeded_ms": settled_ms}


async def load_phase(
    conn: asyncpg.Connection, count: int, roots: dict[str, int | None], bench: Any
) -> dict[str, Any]:
    before = bench.cpu_seconds(roots)
    t0 = time.monotonic()
    async with conn.transaction():
        ids = (await conn.fetchrow(_INSERT, count, "load"))["ids"]
    deadline = t0 + 300
    while True:
        done = await conn.fetchval(
            "SELECT count(*) FROM payments.payments WHERE id = ANY($1) AND status = ANY($2)",
            ids,
            list(FINAL),
        )
        if done == count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} payments settled in 300 s")
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - t0
    after = bench.cpu_seconds(roots)
    check = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE p.status = 'succeeded') AS succeeded,
                  count(DISTINCT p.provider_reference) AS references,
                  (SELECT count(*) FROM payments.payment_attempts a
                    WHERE a.payment_id = ANY($1)) AS attempts
           FROM payments.payments p WHERE p.id = ANY($1)""",
        ids,
    )
    cpu_ms = {
        name: round(1000 * (after[name] - before[name]) / count, 2)
        for name in roots
        if name in after
    }
    return {
        "payments": count,
        "seconds": round(elapsed, 2),
        "payments_per_s": round(count / elapsed, 1),
        "cpu_ms_per_payment": cpu_ms,
        "succeeded": check["succeeded"],
        "attempts": check["attempts"],
        "distinct_provider_references": check["references"],
    }


async def run_variant(
    name: str, src: Path, pg: Any, tmp: Path, args: argparse.Namespace, bench: Any, rnd: int
) -> dict[str, Any]:
    """One variant, one round, on a fresh database and a fresh localstripe (its in-memory store
    grows with every intent and slows it down: a shared one would penalise later runs)."""
    from paygate_devstack.components import STRIPE_TEST_KEY, LocalStripe
    from paygate_devstack.process import free_port

    stripe = LocalStripe(
        free_port(), log_path=tmp / "logs" / f"stripe-{name}-{rnd}.log", api_key=STRIPE_TEST_KEY
    )
    await asyncio.to_thread(stripe.start)
    try:
        return await _run_variant(name, src, pg, stripe, args, bench, rnd)
    finally:
        await asyncio.to_thread(stripe.stop)


async def _run_variant(
    name: str, src: Path, pg: Any, stripe: Any, args: argparse.Namespace, bench: Any, rnd: int
) -> dict[str, Any]:
    from paygate_common.migrations import upgrade_head

    url = str(await pg.acreate_database(f"bench_executor_{name}_{rnd}"))
    await asyncio.to_thread(upgrade_head, str(ALEMBIC_INI), database_url=url, db_schema="payments")
    env = {**os.environ, "PYTHONPATH": str(src), "LOG_LEVEL": "WARNING"}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--drain",
        url,
        stripe.api_base,
        stripe.api_key,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        ready = (await child.stdout.readline()).decode()
        if not ready.startswith("ready"):
            raise RuntimeError(f"{name}: executor child did not start ({ready!r})")
        loops = int(ready.split()[1])
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            idle = await idle_phase(conn, args.idle)
            load = await load_phase(
                conn,
                args.payments,
                {"executor": child.pid, "postgres": pg.pid, "localstripe": stripe.pid},
                bench,
            )
        finally:
            await conn.close()
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 20)
        except TimeoutError:
            child.kill()
            await child.wait()
    pct = bench.pct
    return {
        "variant": name,
        "round": rnd,
        "charging_loops": loops,
        "idle": {
            "count": args.idle,
            "row_to_attempt_p50_ms": round(pct(idle["row_to_attempt_ms"], 50), 1),
            "row_to_attempt_p99_ms": round(pct(idle["row_to_attempt_ms"], 99), 1),
            "row_to_succeeded_p50_ms": round(pct(idle["row_to_succeeded_ms"], 50), 1),
            "row_to_succeeded_p99_ms": round(pct(idle["row_to_succeeded_ms"], 99), 1),
        },
        "load": load,
    }


def extract(rev: str, into: Path) -> Path:
    """payment-service/src of `rev`, unpacked under `into`."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "archive", rev, "payment-service/src"], cwd=ROOT, stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "payment-service" / "src"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Executor bench ({result['when']}, load avg {' '.join(result['loadavg'])})",
        "",
        f"before = `{result['before']}`, after = this branch; {result['payments']} payments "
        f"per load run, {result['idle']} idle payments; localstripe.",
        "",
        "| variant | round | loops | idle row→attempt p50/p99 ms | idle row→succeeded p50/p99 ms"
        " | payments/s | CPU ms/payment executor | postgres | localstripe | exactly once |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in result["runs"]:
        idle, load = run["idle"], run["load"]
        cpu = load["cpu_ms_per_payment"]
        once = (
            load["succeeded"] == load["payments"] == load["attempts"]
            and load["distinct_provider_references"] == load["payments"]
        )
        lines.append(
            f"| {run['variant']} | {run['round']} | {run['charging_loops']} "
            f"| {idle['row_to_attempt_p50_ms']} / {idle['row_to_attempt_p99_ms']} "
            f"| {idle['row_to_succeeded_p50_ms']} / {idle['row_to_succeeded_p99_ms']} "
            f"| {load['payments_per_s']} | {cpu['executor']} | {cpu['postgres']} "
            f"| {cpu['localstripe']} | {'yes' if once else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


async def run_all(
    sources: dict[str, Path], pg: Any, tmp: Path, args: argparse.Namespace, bench: Any
) -> list[dict[str, Any]]:
    runs = []
    for rnd in range(1, args.rounds + 1):
        for name in ("before", "after"):
            run = await run_variant(name, sources[name], pg, tmp, args, bench, rnd)
            print(json.dumps(run), flush=True)
            runs.append(run)
    return runs


def main(args: argparse.Namespace) -> None:
    from paygate_devstack.components import Postgres
    from paygate_devstack.process import free_port

    bench = _checkout_bench()
    before_rev = (
        args.before
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    tmp = Path(tempfile.mkdtemp(prefix="paygate-bench-executor-"))
    sources = {"before": extract(before_rev, tmp), "after": ROOT / "payment-service" / "src"}
    pg = Postgres(tmp / "pg", free_port(), log_path=tmp / "logs" / "postgres.log")
    pg.start()
    try:
        runs = asyncio.run(run_all(sources, pg, tmp, args, bench))
    finally:
        pg.stop()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "before": before_rev[:12],
        "payments": args.payments,
        "idle": args.idle,
        "runs": runs,
    }
    print(markdown(result))
    if not args.no_write:
        (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (HERE / "results.md").write_text(markdown(result))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--drain":
        asyncio.run(drain(*sys.argv[2:5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=600)
    parser.add_argument("--idle", type=int, default=30)
    parser.add_argument("--before", help="the base revision (default: merge base with main)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    main(parser.parse_args())
