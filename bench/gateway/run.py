"""Gateway vs nginx vs direct on the same upstream, same run, interleaved rounds (one command).

    uv run python bench/gateway/run.py            # 3 rounds, writes results.md + results.json
    uv run python bench/gateway/run.py --profile  # also py-spy the gateway under load → PROFILE.md

Four targets per round: the upstream directly, nginx, the gateway with a JWT, and the gateway
with a merchant API key (`gateway_key`: resolved once by the upstream posing as user-service,
then served from the gateway's few-second cache; target within 10% of the JWT run).

After the rounds, `--auth-pairs` short runs compare the key with the JWT alone, alternating
(JWT, key, key, JWT, …) so that the machine's load drifting during the run falls on both alike:
the verdict is the median of the per-pair ratios, with the gateway's CPU per request beside it.

Installs nginx and wrk with apt-get when they are missing (the bench runs as root).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from paygate_common.auth import SigningKey, generate_api_key, issue_access_token, jwks_document
from paygate_devstack.components import Redis
from paygate_devstack.process import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ORDER_PATH = "/orders/ord_bench_1"


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "nginx", "wrk"]
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


NGINX_CONF = """
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream order_service {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location /api/v1/orders/ {{
      proxy_pass http://order_service/orders/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
"""


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", out)
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p50 = float(m.group(1)) * unit[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": p50,
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def wrk(url: str, conns: int, seconds: int, token: str) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (nginx's workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(int(x) for x in out.split())]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes: CPU per request does not depend on how busy
    the rest of the machine is, throughput does."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests (all cores): on a shared VM it slows every
    process at random, and a round with much of it measures the host, not the proxies."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def versions() -> dict[str, str]:
    import httptools
    import uvicorn

    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "httptools": httptools.__version__,
        "nginx": nginx.split("/")[-1],
        "wrk": (wrk_v.stdout + wrk_v.stderr).split()[1] if (wrk_v.stdout + wrk_v.stderr) else "?",
        "kernel": platform.release(),
    }


def profile_gateway(
    pid: int, url: str, token: str, seconds: int = 8, *, subprocesses: bool = False
) -> str:
    """py-spy the gateway while wrk loads it; returns the top own-time and inclusive frames."""
    raw = Path(tempfile.mkdtemp()) / "gateway.pyspy"
    load = subprocess.Popen(
        ["wrk", "-t1", "-c32", f"-d{seconds + 3}s", "-H", f"Authorization: Bearer {token}", url],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1)
    subprocess.run(
        [
            "uvx",
            "py-spy",
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(raw),
            *(["--subprocesses"] if subprocesses else []),
        ],
        check=True,
        capture_output=True,
    )
    load.wait()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"{total} samples at 250 Hz over {seconds} s under `wrk -t1 -c32`.", ""]
    lines += ["### Own time (top 20)", "", "| share | frame |", "| ---: | --- |"]
    lines += [f"| {n / total:.1%} | `{f}` |" for f, n in own.most_common(20)]
    lines += ["", "### Inclusive time (top 30)", "", "| share | frame |", "| ---: | --- |"]
    lines += [f"| {n / total:.1%} | `{f}` |" for f, n in incl.most_common(30)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--latency-seconds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--max-steal",
        type=float,
        default=10.0,
        help="repeat a round when hypervisor steal exceeded this %% in any of its runs (0: off)",
    )
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=1,
        help="uvicorn workers for the gateway (nginx runs `worker_processes auto` = nproc)",
    )
    parser.add_argument(
        "--auth-pairs", type=int, default=8, help="JWT/key pairs after the rounds (0: none)"
    )
    parser.add_argument("--auth-seconds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    ensure_tools()

    key = SigningKey.generate()
    token, _ = issue_access_token(
        key,
        user_id=uuid.uuid4(),
        role="customer",
        email=None,
        issuer="paygate",
        audience="paygate-api",
        ttl_seconds=3600,
    )
    api_key, _ = generate_api_key("test")
    tmp = Path(tempfile.mkdtemp(prefix="paygate-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    redis = Redis(tmp / "redis", free_port())
    up_port, ngx_port, gw_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    try:
        redis.start()
        env = {
            **os.environ,
            "BENCH_JWKS": json.dumps(jwks_document([key])),
            "BENCH_SIGNING_KEY": key.private_pem().decode(),
            "BENCH_API_KEYS": json.dumps({api_key: str(uuid.uuid4())}),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "upstream:app",
                    "--port",
                    str(up_port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=HERE,
                env=env,
            )
        )
        wait_http(f"{upstream_url}/ready", timeout=120)
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, upstream=up_port, port=ngx_port))
        procs.append(subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        services = {n: upstream_url for n in ("user", "order", "payment", "notification")}
        gw_env = {
            **os.environ,
            "GATEWAY_PAYGATE_SERVICE_URLS": json.dumps(services),
            "GATEWAY_JWKS_URL": f"{upstream_url}/.well-known/jwks.json",
            "GATEWAY_REDIS_URL": redis.url,
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_RATE_LIMIT_ENABLED": "true",
            # on, but high enough never to trigger during the run
            "GATEWAY_RATE_LIMIT_USER": "1000000/second",
            "GATEWAY_RATE_LIMIT_ANON": "1000000/second",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "gateway.main:create_app",
                "--factory",
                "--port",
                str(gw_port),
                "--no-access-log",
                "--no-proxy-headers",
                "--loop",
                "uvloop",
                # what `gateway.main:run` uses: httptools, one socket write per response
                "--http",
                "gateway.server:GatewayHttpProtocol",
                "--lifespan",
                "on",
                *(["--workers", str(args.gateway_workers)] if args.gateway_workers > 1 else []),
            ],
            cwd=ROOT / "gateway",
            env=gw_env,
            stdout=(tmp / "gateway.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(gateway)
        targets = {
            "direct": f"{upstream_url}{ORDER_PATH}",
            "nginx": f"http://127.0.0.1:{ngx_port}/api/v1{ORDER_PATH}",
            "gateway": f"http://127.0.0.1:{gw_port}/api/v1{ORDER_PATH}",
            # the same gateway and path, authenticated with an API key instead of a JWT
            "gateway_key": f"http://127.0.0.1:{gw_port}/api/v1{ORDER_PATH}",
        }
        credentials = {name: token for name in targets}
        credentials["gateway_key"] = api_key
        for name, url in targets.items():
            try:
                wait_http(url, timeout=120)  # a loaded two-core box imports slowly
            except RuntimeError:
                print(f"{name} did not come up; gateway log:", flush=True)
                print((tmp / "gateway.log").read_text()[-3000:], flush=True)
                raise
        check = httpx.get(targets["gateway"], headers={"Authorization": f"Bearer {token}"})
        assert check.status_code == 200, check.text
        assert "ratelimit-limit" in check.headers, "rate limiting must be on"
        unauth = httpx.get(targets["gateway"])
        assert unauth.status_code == 401, "JWT checking must be on"
        keyed = httpx.get(targets["gateway_key"], headers={"Authorization": f"Bearer {api_key}"})
        assert keyed.status_code == 200, keyed.text
        typo = api_key[:-1] + ("x" if api_key[-1] != "x" else "y")
        forged = httpx.get(targets["gateway_key"], headers={"Authorization": f"Bearer {typo}"})
        assert forged.status_code == 401, "API key checking must be on"
        # whose CPU is charged to each target: the proxy process(es); "direct" = the upstream
        watched = {
            "direct": [procs[0].pid],
            "nginx": process_tree(procs[1].pid),
            "gateway": process_tree(gateway.pid),
            "gateway_key": process_tree(gateway.pid),
        }
        for name, url in targets.items():  # warm pools and caches
            wrk(url, 32, 2, credentials[name])

        rounds: list[dict[str, dict[str, float]]] = []
        discarded: list[dict[str, dict[str, float]]] = []
        order = list(targets)
        while len(rounds) < args.rounds:
            r = len(rounds)
            result: dict[str, dict[str, float]] = {}
            rotated = order[r % len(order) :] + order[: r % len(order)]
            for name in rotated:
                before = {p: cpu_seconds(pids) for p, pids in watched.items()}
                stolen = steal_seconds()
                tput = wrk(targets[name], 32, args.seconds, credentials[name])
                steal_pct = (
                    (steal_seconds() - stolen) / (args.seconds * (os.cpu_count() or 1)) * 100
                )
                requests = tput["rps"] * args.seconds
                cpu_us = {
                    p: (cpu_seconds(pids) - before[p]) / requests * 1e6
                    for p, pids in watched.items()
                }
                stolen = steal_seconds()
                lat = wrk(targets[name], 1, args.latency_seconds, credentials[name])
                steal_c1 = (steal_seconds() - stolen) / (
                    args.latency_seconds * (os.cpu_count() or 1)
                )
                result[name] = {
                    "rps_c32": tput["rps"],
                    "p50_ms_c32": tput["p50_ms"],
                    "p50_ms_c1": lat["p50_ms"],
                    "non2xx": tput["non2xx"] + lat["non2xx"],
                    "cpu_us_per_req_proxy": cpu_us.get(name, 0.0),
                    "cpu_us_per_req_upstream": cpu_us["direct"],
                    "steal_pct_c32": steal_pct,
                    "steal_pct_c1": steal_c1 * 100,
                    "load_1m": os.getloadavg()[0],
                }
                print(
                    f"round {r + 1} {name:8s} {tput['rps']:9.0f} req/s (c32)  "
                    f"p50 c1 {lat['p50_ms']:.3f} ms  proxy CPU {cpu_us.get(name, 0):.0f} us/req"
                    f"  load {os.getloadavg()[0]:.1f}  steal {steal_pct:.0f}%/{steal_c1 * 100:.0f}%",
                    flush=True,
                )
            worst = max(max(v["steal_pct_c32"], v["steal_pct_c1"]) for v in result.values())
            if args.max_steal and worst > args.max_steal and len(discarded) < 2 * args.rounds:
                # The host took the CPU from this VM: the round measured the host, not the
                # proxies. Run it again (at most 2x rounds extra); discarded rounds are reported.
                print(f"round {r + 1} discarded: steal {worst:.0f}% > {args.max_steal}%")
                discarded.append(result)
                continue
            rounds.append(result)

        # JWT vs key alone, alternating: each pair's ratio cancels the load of its moment.
        auth_pairs: list[dict[str, Any]] = []
        for pair in range(args.auth_pairs):
            order = ("gateway", "gateway_key") if pair % 2 == 0 else ("gateway_key", "gateway")
            entry: dict[str, Any] = {"pair": pair + 1, "first": order[0]}
            for name in order:
                before_cpu = cpu_seconds(watched["gateway"])
                run = wrk(targets[name], 32, args.auth_seconds, credentials[name])
                served = run["rps"] * args.auth_seconds
                entry[name] = {
                    "rps": run["rps"],
                    "p50_ms_c32": run["p50_ms"],
                    "non2xx": run["non2xx"],
                    "cpu_us_per_req": (cpu_seconds(watched["gateway"]) - before_cpu) / served * 1e6,
                    "load_1m": os.getloadavg()[0],
                }
            entry["rps_ratio"] = entry["gateway_key"]["rps"] / entry["gateway"]["rps"]
            entry["cpu_ratio"] = (
                entry["gateway_key"]["cpu_us_per_req"] / entry["gateway"]["cpu_us_per_req"]
            )
            auth_pairs.append(entry)
            print(
                f"auth pair {pair + 1}: JWT {entry['gateway']['rps']:.0f} req/s "
                f"{entry['gateway']['cpu_us_per_req']:.0f} us/req, key "
                f"{entry['gateway_key']['rps']:.0f} req/s "
                f"{entry['gateway_key']['cpu_us_per_req']:.0f} us/req: key/JWT "
                f"{entry['rps_ratio']:.2f}x  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

        med = {
            name: {
                "rps_c32": statistics.median(x[name]["rps_c32"] for x in rounds),
                "p50_ms_c1": statistics.median(x[name]["p50_ms_c1"] for x in rounds),
            }
            for name in targets
        }
        ratio = med["gateway"]["rps_c32"] / med["nginx"]["rps_c32"]
        delta = med["gateway"]["p50_ms_c1"] - med["nginx"]["p50_ms_c1"]
        per_round_ratio = [x["gateway"]["rps_c32"] / x["nginx"]["rps_c32"] for x in rounds]
        key_ratio = med["gateway_key"]["rps_c32"] / med["gateway"]["rps_c32"]
        key_ratio_per_round = [
            x["gateway_key"]["rps_c32"] / x["gateway"]["rps_c32"] for x in rounds
        ]
        key_delta = med["gateway_key"]["p50_ms_c1"] - med["gateway"]["p50_ms_c1"]
        resolves = httpx.get(f"{upstream_url}/bench/resolves").json()["count"]
        non2xx = sum(x[n]["non2xx"] for x in rounds for n in x) + sum(
            p[n]["non2xx"] for p in auth_pairs for n in ("gateway", "gateway_key")
        )
        profile = (
            profile_gateway(
                gateway.pid, targets["gateway"], token, subprocesses=args.gateway_workers > 1
            )
            if args.profile
            else None
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "versions": versions(),
        "setup": {
            "upstream": "FastAPI, one endpoint returning a 62-byte JSON object, one uvicorn "
            "process (uvloop + httptools)",
            "nginx": "worker_processes auto, upstream keepalive 64, HTTP/1.1",
            "gateway": f"{args.gateway_workers} uvicorn worker(s) (uvloop, "
            "gateway.server:GatewayHttpProtocol: /api/* served without ASGI, one write per "
            "response; pooled httptools upstream client; rate-limit sync over raw RESP), JWT "
            "check ON (verified-token cache), rate limiting ON via Redis "
            "(1000000/second: never triggers)",
            "gateway_key": "the same gateway and path with `Authorization: Bearer pgk_test_…`: "
            "resolved by the upstream posing as user-service into a 60 s owner token, cached "
            "4 s with a background re-resolve 1 s before it goes stale",
            "wrk": f"-t1 -c32 -d{args.seconds}s for throughput, -t1 -c1 -d{args.latency_seconds}s "
            "for p50; the same JWT sent to direct, nginx and gateway, the API key to gateway_key",
            "rounds": args.rounds,
            "max_steal_pct": args.max_steal,
        },
        "rounds": rounds,
        "discarded_rounds_for_steal": discarded,
        "median": med,
        "ratio_gateway_to_nginx": ratio,
        "ratio_per_round": per_round_ratio,
        "p50_delta_ms_gateway_minus_nginx": delta,
        "ratio_key_to_jwt": key_ratio,
        "ratio_key_to_jwt_per_round": key_ratio_per_round,
        "p50_delta_ms_key_minus_jwt": key_delta,
        "auth_pairs": auth_pairs,
        "auth_pairs_rps_ratio_median": statistics.median(p["rps_ratio"] for p in auth_pairs)
        if auth_pairs
        else None,
        "auth_pairs_cpu_ratio_median": statistics.median(p["cpu_ratio"] for p in auth_pairs)
        if auth_pairs
        else None,
        "api_key_resolves_during_run": resolves,
        "non2xx_total": non2xx,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    lines = [
        "# Gateway benchmark results",
        "",
        f"- date: {info['date']}",
        f"- cores (`nproc`): {info['nproc']}; load average at the end: "
        + ", ".join(f"{x:.2f}" for x in info["load_average_at_end"]),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "- setup: " + "; ".join(f"{k}: {v}" for k, v in info["setup"].items()),
        "- command: `uv run python bench/gateway/run.py`",
        "",
        "CPU µs/req = user+system CPU of the proxy process(es) during the 32-connection run, "
        "divided by the requests served (for `direct`: the upstream's own). It depends much less "
        "than req/s on how busy the rest of the machine is. Steal = CPU time the hypervisor gave "
        "to other guests during the 32-connection and the 1-connection run, in % of this VM's cores: with much of it "
        "every number in that row is the host's, not the proxy's.",
        "",
        "| round | target | req/s at 32 conns | p50 at 1 conn (ms) | proxy CPU µs/req "
        "| steal c32 / c1 | load (1 min) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, rnd in enumerate(rounds, 1):
        for name, v in rnd.items():
            cpu = v["cpu_us_per_req_proxy"] if name != "direct" else v["cpu_us_per_req_upstream"]
            lines.append(
                f"| {i} | {name} | {v['rps_c32']:.0f} | {v['p50_ms_c1']:.3f} | {cpu:.0f} "
                f"| {v.get('steal_pct_c32', 0.0):.0f}% / {v.get('steal_pct_c1', 0.0):.0f}% "
                f"| {v.get('load_1m', float('nan')):.1f} |"
            )
    lines += [
        "",
        "| median | req/s at 32 conns | p50 at 1 conn (ms) |",
        "| --- | ---: | ---: |",
    ]
    for name, v in med.items():
        lines.append(f"| {name} | {v['rps_c32']:.0f} | {v['p50_ms_c1']:.3f} |")
    lines += [
        "",
        f"**gateway / nginx throughput: {ratio:.2f}x** (target ≥ 0.90x; per round: "
        + ", ".join(f"{x:.2f}" for x in per_round_ratio)
        + ")",
        "",
        f"**p50 delta at one connection: {delta * 1000:+.0f} µs** over nginx (target ≤ +300 µs)",
        "",
        f"**API key / JWT throughput through the gateway: {key_ratio:.2f}x** (target ≥ 0.90x; "
        "per round: " + ", ".join(f"{x:.2f}" for x in key_ratio_per_round) + f"); p50 delta at "
        f"one connection {key_delta * 1000:+.0f} µs; resolve calls to user-service during the "
        f"whole run: {resolves}",
        "",
    ]
    if auth_pairs:
        lines += [
            f"### API key vs JWT alone, alternating ({len(auth_pairs)} pairs of "
            f"`wrk -t1 -c32 -d{args.auth_seconds}s`, order JWT-key, key-JWT, …)",
            "",
            "| pair | JWT req/s | key req/s | key/JWT | JWT CPU µs/req | key CPU µs/req "
            "| key/JWT CPU | load (1 min) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in auth_pairs:
            j, k = p["gateway"], p["gateway_key"]
            lines.append(
                f"| {p['pair']} | {j['rps']:.0f} | {k['rps']:.0f} | {p['rps_ratio']:.2f} "
                f"| {j['cpu_us_per_req']:.0f} | {k['cpu_us_per_req']:.0f} | {p['cpu_ratio']:.2f} "
                f"| {k['load_1m']:.1f} |"
            )
        lines += [
            "",
            f"**API key / JWT, alternating: throughput {info['auth_pairs_rps_ratio_median']:.2f}x"
            f", gateway CPU per request {info['auth_pairs_cpu_ratio_median']:.2f}x** (medians "
            "of the per-pair ratios; target: throughput ≥ 0.90x)",
            "",
        ]
    lines += [
        f"Rounds kept although a run had more than {args.max_steal:.0f}% steal (the re-run "
        "budget was used up; their medians measure the host as much as the proxies): "
        + str(
            sum(
                1
                for x in rounds
                if max(max(v["steal_pct_c32"], v["steal_pct_c1"]) for v in x.values())
                > args.max_steal
            )
        )
        + ".",
        "",
        f"Non-2xx responses during the run: {non2xx:.0f}. Rounds discarded and re-run because "
        f"hypervisor steal exceeded {args.max_steal:.0f}% in one of their runs: {len(discarded)}"
        + (
            " (their gateway/nginx ratios: "
            + ", ".join(f"{d['gateway']['rps_c32'] / d['nginx']['rps_c32']:.2f}" for d in discarded)
            + "; p50 deltas: "
            + ", ".join(
                f"{(d['gateway']['p50_ms_c1'] - d['nginx']['p50_ms_c1']) * 1000:+.0f} µs"
                for d in discarded
            )
            + ")."
            if discarded
            else "."
        ),
        "",
    ]
    (args.out / "results.md").write_text("\n".join(lines))
    if profile is not None:
        (args.out / "PROFILE.raw.md").write_text(profile + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
