"""Does a second replica of the hottest service help? 1 vs 2 payment-service processes, one run.

    uv run python bench/replicas/run.py            # writes results.md + results.json here

payment-service is the hottest process of the checkout (bench/checkout/PROFILE.md: 15-18 ms of
CPU per order). The script starts the real suite with `make run`'s launcher and two payment
replicas (`--replicas payment=2`: ports from the registry), makes a customer with a few settled
orders, and starts two more gateways on the same stack that differ in one setting only: `one`
knows the first payment replica, `two` is given both (`GATEWAY_PAYMENT_URLS`). Then it
alternates (one, two, two, one, …) `wrk -c32` on `GET /api/v1/payments?limit=20` with the
customer's JWT: a read that costs payment-service a JWT check, a query and a page of JSON.
Each run records req/s, p50, CPU per request of every process that works for it, the
hypervisor's steal and the load average; the verdict is the median of the per-pair ratios.

Installs wrk with apt-get when it is missing (the bench runs as root).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from paygate_common.services import replica_urls_env
from paygate_devstack.process import free_port
from paygate_devstack.schemathesis_kit import customer_headers
from paygate_devstack.services import ServiceProcess, spec_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVICE = "payment"

# wrk, CPU and steal accounting are the gateway bench's (bench/gateway/run.py)
_spec = importlib.util.spec_from_file_location("gateway_bench", HERE.parent / "gateway" / "run.py")
assert _spec is not None and _spec.loader is not None
gateway_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gateway_bench)

_EXTERNAL = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "STRIPE_API_BASE", "SMTP_HOST")
LIMITS = {
    "GATEWAY_RATE_LIMIT_AUTH": "100000/minute",
    "GATEWAY_RATE_LIMIT_ANON": "100000000/minute",
    "GATEWAY_RATE_LIMIT_USER": "100000000/minute",
}


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its children, including children that exited since (PostgreSQL's
    backends come and go: their time moves into the parent's cutime/cstime when reaped)."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int) -> list[str]:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return []

    own = stat(pid)
    if not own:
        return 0.0
    total = sum(int(x) for x in own[11:15])  # utime, stime, cutime, cstime
    for child in gateway_bench.process_tree(pid)[1:]:
        fields = stat(child)
        total += int(fields[11]) + int(fields[12]) if fields else 0
    return total / tick


def start_stack(state: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k not in _EXTERNAL and k != "PYTHONPATH"}
    env.update(PAYGATE_STATE_DIR=str(state), **LIMITS)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paygate_devstack", "run", "--fresh", "--replicas", "payment=2"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 600
    while not (state / "stack.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the launcher did not come up:\n" + log.read_text()[-3000:])
        time.sleep(0.5)
    return proc, json.loads((state / "stack.json").read_text())


def start_gateway(stack: dict[str, Any], urls: list[str], logs: Path, name: str) -> ServiceProcess:
    """A gateway on the launcher's stack that balances `SERVICE` over `urls` only."""
    env = {k: v for k, v in stack["env"].items() if not k.startswith("GATEWAY_")}
    env.update(LIMITS)
    env[replica_urls_env(SERVICE)] = ",".join(urls)
    env["GATEWAY_LOG_LEVEL"] = "WARNING"
    gw = ServiceProcess(
        spec_for("gateway"), env=env, port=free_port(), root=ROOT, log_dir=logs / f"bench-{name}"
    )
    gw.start(timeout=120)
    return gw


def customer(api: str, orders: int) -> str:
    """A customer with `orders` settled orders (so the page has payments); its access token."""
    headers = customer_headers(api)  # signed up through the gateway, a test card saved
    token = headers["Authorization"].removeprefix("Bearer ")
    with httpx.Client(base_url=api, timeout=60) as client:
        for i in range(orders):
            r = client.post(
                "/orders",
                json={"amount": 1000 + i, "currency": "usd"},
                headers={**headers, "Idempotency-Key": f"bench-{uuid.uuid4()}"},
            )
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = client.get("/payments", params={"limit": 100}, headers=headers).json()
            if len(page["items"]) >= orders:
                break
            time.sleep(0.5)
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=4, help="(one, two) pairs, order alternating")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    gateway_bench.ensure_tools()

    tmp = Path(tempfile.mkdtemp(prefix="paygate-bench-replicas-"))
    state = tmp / ".paygate"
    launcher, stack = start_stack(state, tmp / "launcher.out")
    gateways: dict[str, ServiceProcess] = {}
    try:
        replicas = stack["replicas"][SERVICE]
        assert len(replicas) == 2, replicas
        logs = Path(stack["logs_dir"])
        gateways["one"] = start_gateway(stack, replicas[:1], logs, "one")
        gateways["two"] = start_gateway(stack, replicas, logs, "two")
        token = customer(gateways["two"].url + "/api/v1", args.orders)
        path = "/api/v1/payments?limit=20"
        for gw in gateways.values():
            r = httpx.get(gw.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 200 and len(r.json()["items"]) >= 1, r.text
            gateway_bench.wrk(gw.url + path, 32, 2, token)  # warm pools and caches

        services = stack["services"]
        watched = {
            "gateway": 0,  # the one under load, filled per run
            "payment": services[SERVICE]["pid"],
            "payment-2": services[f"{SERVICE}-2"]["pid"],
            "user": services["user"]["pid"],  # JWKS only: it must stay idle
            "postgres": stack["infra"]["postgres"]["pid"],
        }
        # What each process burns with no request at all (consumers' fetches, workers' and the
        # outbox relay's polls), subtracted below so CPU per request is the request's own.
        idle_seconds = 10.0
        before = {p: tree_cpu_seconds(v) for p, v in watched.items() if v}
        time.sleep(idle_seconds)
        idle_rate = {
            p: (tree_cpu_seconds(watched[p]) - b) / idle_seconds for p, b in before.items()
        }
        idle_rate["gateway"] = 0.0
        print(
            "idle CPU (% of a core): "
            + ", ".join(f"{p} {r * 100:.1f}" for p, r in idle_rate.items())
        )
        runs: list[dict[str, Any]] = []
        for pair in range(args.pairs):
            order = ("one", "two") if pair % 2 == 0 else ("two", "one")
            for name in order:
                pids = {**watched, "gateway": gateways[name].pid}
                before = {p: tree_cpu_seconds(v) for p, v in pids.items()}
                stolen = gateway_bench.steal_seconds()
                started = time.monotonic()
                result = gateway_bench.wrk(gateways[name].url + path, 32, args.seconds, token)
                elapsed = time.monotonic() - started
                steal = (
                    (gateway_bench.steal_seconds() - stolen)
                    / (args.seconds * (os.cpu_count() or 1))
                    * 100
                )
                requests = result["rps"] * args.seconds
                cpu = {
                    p: (tree_cpu_seconds(v) - before[p] - idle_rate[p] * elapsed) / requests * 1e6
                    for p, v in pids.items()
                }
                runs.append(
                    {
                        "pair": pair + 1,
                        "replicas": 1 if name == "one" else 2,
                        "rps": result["rps"],
                        "p50_ms": result["p50_ms"],
                        "non2xx": result["non2xx"],
                        "cpu_us_per_req": cpu,
                        "steal_pct": steal,
                        "idle_cpu_share": idle_rate,
                        "load_1m": os.getloadavg()[0],
                    }
                )
                print(
                    f"pair {pair + 1} {name}: {result['rps']:7.0f} req/s  p50 "
                    f"{result['p50_ms']:.2f} ms  CPU us/req "
                    + " ".join(f"{p} {v:.0f}" for p, v in cpu.items())
                    + f"  steal {steal:.0f}%  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        for gw in gateways.values():
            gw.stop()
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(120)
        except subprocess.TimeoutExpired:
            launcher.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    report(args, runs)


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    by_pair: dict[int, dict[int, dict[str, Any]]] = {}
    for run in runs:
        by_pair.setdefault(run["pair"], {})[run["replicas"]] = run
    ratios = [p[2]["rps"] / p[1]["rps"] for p in by_pair.values()]
    one = [r for r in runs if r["replicas"] == 1]
    two = [r for r in runs if r["replicas"] == 2]

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def med_cpu(rows: list[dict[str, Any]], proc: str) -> float:
        return statistics.median(r["cpu_us_per_req"][proc] for r in rows)

    procs = list(runs[0]["cpu_us_per_req"])
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "service": SERVICE,
        "request": "GET /api/v1/payments?limit=20 with a customer's JWT "
        f"({args.orders} settled orders), wrk -t1 -c32 -d{args.seconds}s",
        "setup": "`python -m paygate_devstack run --replicas payment=2` (the whole suite), plus "
        "two gateways on it that differ only in GATEWAY_PAYMENT_URLS: `one` = the first "
        "replica, `two` = both; runs alternate one/two/two/one so load drift falls on both",
        "runs": runs,
        "ratio_two_to_one_per_pair": ratios,
        "ratio_two_to_one_median": statistics.median(ratios),
        "median": {
            "one": {"rps": med(one, "rps"), "p50_ms": med(one, "p50_ms")},
            "two": {"rps": med(two, "rps"), "p50_ms": med(two, "p50_ms")},
        },
        "median_cpu_us_per_req": {
            "one": {p: med_cpu(one, p) for p in procs},
            "two": {p: med_cpu(two, p) for p in procs},
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [
        "# A second replica of the hottest service (payment) on this machine",
        "",
        f"- date: {info['date']}; cores (`nproc`): {info['nproc']}; load average at the end: "
        + ", ".join(f"{x:.2f}" for x in info["load_average_at_end"]),
        f"- request: {info['request']}",
        f"- setup: {info['setup']}",
        "- command: `uv run python bench/replicas/run.py`",
        "",
        "CPU µs/req = user+system CPU of each process (with its children: PostgreSQL's backends) "
        "during the run, minus what it burns idle (measured for 10 s before the runs), / "
        "requests served. "
        "Steal = CPU the hypervisor gave to other guests, % of this VM's cores. Load = the "
        "1-minute load average at the end of the run (other work on the machine included).",
        "",
        "| pair | replicas | req/s | p50 (ms) | CPU µs/req: "
        + " / ".join(procs)
        + " | steal | load |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r['pair']} | {r['replicas']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            + " / ".join(f"{r['cpu_us_per_req'][p]:.0f}" for p in procs)
            + f" | {r['steal_pct']:.0f}% | {r['load_1m']:.1f} |"
        )
    lines += [
        "",
        f"**2 replicas / 1 replica throughput: {info['ratio_two_to_one_median']:.2f}x** "
        "(median of the per-pair ratios: " + ", ".join(f"{x:.2f}" for x in ratios) + ")",
        "",
        "| | req/s (median) | p50 ms | CPU µs/req (median): " + " / ".join(procs) + " |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in ("one", "two"):
        m, c = info["median"][name], info["median_cpu_us_per_req"][name]
        lines.append(
            f"| {name} | {m['rps']:.0f} | {m['p50_ms']:.2f} | "
            + " / ".join(f"{c[p]:.0f}" for p in procs)
            + " |"
        )
    lines.append("")
    (args.out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
