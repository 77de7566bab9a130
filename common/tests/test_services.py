"""The service registry is the one place a service's port, schema, env prefix and routes are written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.routes import ROUTES, RouteTable
from paygate_common.serve import settings_class, uvicorn_options
from paygate_common.services import SERVICES, spec_for
from paygate_common.settings import DEFAULT_SERVICE_URLS
from paygate_devstack import services as devstack_services
from paygate_devstack.services import implemented_services

ROOT = Path(__file__).resolve().parents[2]
IMPLEMENTED = implemented_services(ROOT)


def test_the_launcher_runs_exactly_the_registry() -> None:
    assert devstack_services.SERVICES is SERVICES
    assert {s.name for s in IMPLEMENTED} >= {"gateway", "user", "order", "payment"}


@pytest.mark.parametrize("spec", IMPLEMENTED, ids=lambda s: s.name)
def test_each_services_settings_come_from_its_registry_entry(spec: object) -> None:
    from paygate_common.services import ServiceSpec

    assert isinstance(spec, ServiceSpec)
    cls = settings_class(spec.name)
    settings = cls()
    assert cls.model_config.get("env_prefix") == spec.env_prefix
    assert settings.port == spec.port
    assert settings.service_name == spec.folder
    assert settings.db_schema == (spec.schema or "public")
    assert uvicorn_options(spec.name, settings)["port"] == spec.port
    assert DEFAULT_SERVICE_URLS[spec.name] == f"http://127.0.0.1:{spec.port}"


def test_every_registered_route_reaches_its_service_at_the_gateway() -> None:
    table = RouteTable(ROUTES)
    declared = [(spec, r) for spec in SERVICES for r in spec.routes]
    assert len(ROUTES) == len(declared)
    for spec, route in declared:
        matched = table.match(route.gateway_prefix + "/x")
        assert matched is not None and matched.service == spec.name, route.prefix
        assert matched.upstream_path_for(route.gateway_prefix) == route.upstream_prefix
        assert matched.web == route.web


def test_the_container_entrypoint_reads_the_registry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "paygate_common.services", "shell", "order-service"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "port=8008" in out and "app=order_service.main:create_app" in out
    unknown = subprocess.run(
        [sys.executable, "-m", "paygate_common.services", "shell", "no-such"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode != 0


# A port or an env prefix written anywhere but the registry is a second source of truth that
# will drift. Tests, docs and deployment files are checked against the registry elsewhere
# (tests/deploy); here: the code.
_PORT_LITERAL = re.compile(r"(?<![\d.])80(?:0[0-8])(?!\d)")
_PREFIX_LITERAL = re.compile(r"['\"][A-Z_]+_SERVICE_['\"]|['\"]GATEWAY_['\"]")


def _runtime_sources() -> list[Path]:
    roots = [ROOT / "common" / "src", ROOT / "devstack" / "src"]
    roots += [ROOT / s.folder / "src" for s in IMPLEMENTED]
    files = [p for root in roots for p in root.rglob("*.py")]
    files.append(ROOT / "deploy" / "docker-entrypoint.sh")
    return [p for p in files if p.name != "services.py" or "paygate_common" not in str(p)]


def test_no_port_or_env_prefix_is_written_outside_the_registry() -> None:
    offenders = []
    for path in _runtime_sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if _PORT_LITERAL.search(code) or _PREFIX_LITERAL.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_spec_lookup_by_name_folder_or_package() -> None:
    assert spec_for("exchange-rate") is spec_for("exchange-rate-service")
    assert spec_for("exchange_rate_service").env_prefix == "EXCHANGE_RATE_SERVICE_"
    with pytest.raises(KeyError):
        spec_for("billing")
