"""Alert rules and the Grafana dashboard: valid for Prometheus, and about metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "paygate.json"

# `Counter("paygate_x_total", ...)`, `Gauge(\n    "paygate_x", ...)`, `CounterMetricFamily("paygate_x", ...)`
_DEFINED = re.compile(
    r"(Counter|Gauge|Histogram|Summary)(?:MetricFamily)?\(\s*\"(paygate_[a-z0-9_]+)\""
)
_USED = re.compile(r"\b(paygate_[a-z0-9_]+)\b")


def exported_metrics() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("*/src/**/*.py"):
        for kind, name in _DEFINED.findall(path.read_text()):
            names.add(name)
            if kind == "Counter" and not name.endswith("_total"):
                names.add(name + "_total")  # how prometheus_client exposes a counter
            if kind == "Histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return exprs


def test_the_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_every_metric_an_alert_or_panel_names_is_exported_by_the_code() -> None:
    exported = exported_metrics()
    assert {"paygate_http_requests_total", "paygate_consumer_lag"} <= exported
    missing = sorted({name for e in expressions() for name in _USED.findall(e)} - exported)
    assert not missing, f"not exported by any service: {missing}"


def test_the_alerts_cover_what_operators_are_paged_for() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "PaygateDeadLetters",
        "PaygateConsumerLag",
        "PaygateHigh5xxRate",
        "PaygateFailedSigninSpike",
        "PaygateOutboxBacklog",
        "PaygateCircuitOpen",
    } <= names


def test_compose_mounts_the_rules_and_the_dashboard() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml" in compose
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in compose
