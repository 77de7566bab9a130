"""Static checks of the Dockerfile, the compose files and the Kubernetes manifests.

There is no container engine here, so these tests read the files and hold them against the
code: every implemented service is deployed, probes hit the real endpoints, every variable a
manifest sets is one the service's Settings reads (pydantic ignores unknown ones silently),
secrets are placeholders, and the topics are `ALL_TOPICS`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from paygate_common.events.topics import ALL_TOPICS
from paygate_common.settings import ServiceSettings
from paygate_devstack.services import implemented_services

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"

# Read by uvicorn itself (not by Settings): the trusted proxies and the worker count.
RUNTIME_VARS = {"FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY"}
DEV_MARKER = "dev-only"


# --- loading ----------------------------------------------------------------------------------


class Replace:
    """A compose `!reset` / `!override` value: replaces instead of merging."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    """PyYAML with compose's merge-control tags."""


def _replace(loader: yaml.SafeLoader, node: yaml.Node) -> Replace:
    if isinstance(node, yaml.SequenceNode):
        return Replace(loader.construct_sequence(node, deep=True))
    if isinstance(node, yaml.MappingNode):
        return Replace(loader.construct_mapping(node, deep=True))
    return Replace(loader.construct_scalar(node) or None)  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _replace)
ComposeLoader.add_constructor("!override", _replace)


def load_compose(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)
    return data


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of two files, as far as these tests need it."""
    if isinstance(override, Replace):
        return override.value
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else unwrap(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + [v for v in override if v not in base]
    return unwrap(override)


def unwrap(value: Any) -> Any:
    if isinstance(value, Replace):
        return value.value
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d.get("kind") == kind}


DEV = load_compose("docker-compose.yml")
PROD_OVERRIDES = load_compose("docker-compose.prod.yml")
PROD = merge(DEV, PROD_OVERRIDES)
SERVICES = implemented_services(ROOT)
FOLDERS = [s.folder for s in SERVICES]


def with_defaults(value: Any) -> str:
    """`${REPLICAS:-2}` -> `2`: a value as compose sees it when the variable is unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def prod_services() -> dict[str, dict[str, Any]]:
    """The services `up` starts with the prod override (dev-tools profile left out)."""
    return {n: s for n, s in PROD["services"].items() if not s.get("profiles")}


# --- what each service understands ----------------------------------------------------------


def settings_class(package: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"{package}.settings")
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type)
        and issubclass(c, ServiceSettings)
        and c.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"{package}.settings should define one settings class"
    return classes[0]


def known_variables(folder: str) -> set[str]:
    """Every environment variable the service reads: `<PREFIX><FIELD>` and `<FIELD>`."""
    spec = next(s for s in SERVICES if s.folder == folder)
    cls = settings_class(spec.package)
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    names = {f.upper() for f in cls.model_fields}
    return names | {prefix + n for n in names} | RUNTIME_VARS


def image_folder(image: str) -> str | None:
    """`paygate/user-service:dev` -> `user-service`."""
    match = re.fullmatch(r"(?:.*/)?paygate/([a-z-]+)(?::.*)?", image)
    return match.group(1) if match and match.group(1) in FOLDERS else None


def compose_paygate_services(config: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, service in config["services"].items():
        folder = image_folder(str(service.get("image", "")))
        if folder:
            yield name, folder, service


# --- every file parses ----------------------------------------------------------------------


def test_every_deployment_yaml_parses() -> None:
    files = [ROOT / "docker-compose.yml", ROOT / "docker-compose.prod.yml", *K8S.glob("*.yaml")]
    for path in files:
        docs = list(yaml.load_all(path.read_text(), Loader=ComposeLoader))
        assert docs and all(isinstance(d, dict) for d in docs if d is not None), path


def test_there_are_services_to_deploy() -> None:
    assert {"gateway", "user-service", "payment-service", "order-service"} <= set(FOLDERS)


# --- Dockerfile and entrypoint -------------------------------------------------------------


def test_dockerfile_is_one_multi_stage_recipe_for_every_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert re.search(r"^ARG SERVICE=", text, re.M)
    assert "pip install" in text and "uv==" in text, "uv comes from PyPI, not from its image"
    assert re.search(r"uv sync --frozen --no-dev --no-editable --package", text)
    assert re.search(r"^USER 10001", text, re.M), "the runtime runs as non-root"
    assert re.search(r"^HEALTHCHECK .*\n.*healthcheck", text, re.M)
    assert not list(ROOT.glob("*/Dockerfile")), "one Dockerfile at the root, not one per service"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored and ".paygate" in ignored
    assert "deploy" not in ignored, "the entrypoint script is copied from deploy/"


@pytest.fixture
def stub_bin(tmp_path: Path) -> Path:
    """`uvicorn` and `alembic` that print how they were called instead of running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("uvicorn", "alembic"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} cwd=$PWD $*"\n')
        stub.chmod(0o755)
    return bin_dir


def run_entrypoint(stub_bin: Path, service: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        # the image's python has paygate_common installed; here it is this interpreter
        "PATH": f"{stub_bin}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PAYGATE_SERVICE": service,
        "PAYGATE_HOME": str(stub_bin.parent / "app"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("folder", FOLDERS)
def test_entrypoint_serves_each_service_on_its_port(stub_bin: Path, folder: str) -> None:
    spec = next(s for s in SERVICES if s.folder == folder)
    result = run_entrypoint(stub_bin, folder)
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    assert argv[2] == spec.app and "--factory" in argv
    assert argv[argv.index("--port") + 1] == str(spec.port)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    for flag in spec.uvicorn_args:  # the gateway's loop, protocol and --no-proxy-headers
        assert flag in argv


def test_entrypoint_migrates_from_the_service_folder(stub_bin: Path) -> None:
    folder = stub_bin.parent / "app" / "user-service"
    folder.mkdir(parents=True)
    (folder / "alembic.ini").write_text("[alembic]\n")
    result = run_entrypoint(stub_bin, "user-service", "migrate")
    assert result.stdout.strip() == f"alembic cwd={folder} -c alembic.ini upgrade head"
    assert run_entrypoint(stub_bin, "gateway", "migrate").returncode == 0  # nothing to migrate
    assert run_entrypoint(stub_bin, "no-such-service").returncode == 64


def test_entrypoint_healthcheck_fails_without_a_server(stub_bin: Path) -> None:
    result = run_entrypoint(stub_bin, "order-service", "healthcheck", "/ready")
    assert result.returncode != 0 and "unhealthy" in result.stderr


# --- docker compose -------------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_dev_compose_runs_every_service_after_its_migrations(folder: str) -> None:
    spec = next(s for s in SERVICES if s.folder == folder)
    service = DEV["services"][folder]
    assert service["build"]["args"]["SERVICE"] == folder
    assert service["ports"] == [f"{spec.port}:{spec.port}"]
    assert service["healthcheck"]["test"][-1] == "/ready"
    depends = service["depends_on"]
    if (ROOT / folder / "alembic.ini").exists():
        migrate = DEV["services"][f"migrate-{folder}"]
        assert migrate["command"] == ["migrate"]
        assert migrate["build"]["args"]["SERVICE"] == folder
        assert migrate["environment"] == service["environment"], "migrations validate settings"
        assert depends[f"migrate-{folder}"]["condition"] == "service_completed_successfully"
    if folder != "gateway":
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_prod_compose_publishes_only_the_gateway() -> None:
    published = {n: s.get("ports", []) for n, s in prod_services().items() if s.get("ports")}
    assert list(published) == ["gateway"]
    assert [p.split(":")[-1] for p in published["gateway"]] == ["8000"]


def test_prod_compose_runs_production_settings_without_dev_secrets() -> None:
    services = prod_services()
    assert not {"localstripe", "mailpit"} & set(services), "dev tools stay out of production"
    for name, folder, service in compose_paygate_services(PROD):
        env = service["environment"]
        assert env["ENVIRONMENT"] == "production", name
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true", name
        leaked = [k for k, v in env.items() if DEV_MARKER in str(v)]
        assert not leaked, f"{name} would get development secrets: {leaked}"
        assert service["read_only"] is True, name
        if not name.startswith("migrate-"):
            assert service["restart"] == "unless-stopped", name
            assert service["deploy"]["resources"]["limits"], name
            assert service["healthcheck"]["test"], name
            if folder != "gateway":
                assert int(with_defaults(service["deploy"]["replicas"])) >= 2, name
    # secrets are required, never defaulted
    text = (ROOT / "docker-compose.prod.yml").read_text()
    for var in ("SERVICE_TOKEN_SECRET", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET",
                "USER_SERVICE_JWT_PRIVATE_KEY", "POSTGRES_PASSWORD"):  # fmt: skip
        assert f"${{{var}:?" in text, var


@pytest.mark.parametrize("config_name", ["dev", "prod"])
def test_compose_sets_only_variables_the_services_read(config_name: str) -> None:
    config = DEV if config_name == "dev" else PROD
    for name, folder, service in compose_paygate_services(config):
        unknown = set(service.get("environment", {})) - known_variables(folder)
        assert not unknown, f"{name}: {sorted(unknown)} are not settings of {folder}"


def test_compose_topics_are_all_topics() -> None:
    env = DEV["services"]["kafka-topics"]["environment"]
    assert sorted(env["TOPICS"].split()) == sorted(ALL_TOPICS)


def required_variables() -> dict[str, str]:
    text = (ROOT / "docker-compose.prod.yml").read_text()
    names = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    values = {n: f"placeholder-{n.lower()}" for n in names}
    values["USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL"] = "admin@example.com"
    return values


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone Compose v2 `docker-compose`."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    for command in candidates:
        if not shutil.which(command[0]):
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and re.search(r"v?2\.\d+", probe.stdout):
            return command
    return None


def test_compose_config_is_valid_for_docker_compose(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 CLI (`docker compose` plugin or `docker-compose` v2)")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def compose(*args: str, env: dict[str, str]) -> tuple[bool, str, str]:
        # never the caller's real .env; errors judged from stderr too, since some wrappers
        # around the compose binary lose its exit code
        result = subprocess.run(
            [*command, "--project-directory", str(ROOT), "--env-file", os.devnull, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        ok = result.returncode == 0 and "error" not in result.stderr.lower()
        return ok, result.stdout, result.stderr

    both = ["-f", "docker-compose.yml", "-f", "docker-compose.prod.yml"]
    ok, _, err = compose("-f", "docker-compose.yml", "config", "-q", env=base)
    assert ok, err
    ok, out, err = compose(
        *both, "config", "--format", "json", env={**base, **required_variables()}
    )
    assert ok, err
    # Compose's own merge agrees with ours: only the gateway is published.
    services = json.loads(out)["services"]
    published = {n: [p["published"] for p in s.get("ports", [])] for n, s in services.items()}
    assert {n: p for n, p in published.items() if p} == {"gateway": ["8000"]}
    # and production refuses to start without its secrets
    ok, _, err = compose(*both, "config", "-q", env=base)
    assert not ok and "must be set" in err


# --- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert kustomization["namespace"] == "paygate"
    assert {i["name"] for i in kustomization["images"]} == {f"paygate/{f}" for f in FOLDERS}


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


@pytest.mark.parametrize("folder", FOLDERS)
def test_k8s_deployment_and_service_for_every_service(folder: str) -> None:
    spec = next(s for s in SERVICES if s.folder == folder)
    deployment = k8s_objects("Deployment")[folder]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert image_folder(container["image"]) == folder
    served = [p["containerPort"] for p in container["ports"] if p["name"] != "metrics"]
    assert served == [spec.port]
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        assert container[probe]["httpGet"] == {"path": path, "port": spec.port}, probe
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # non-root, read-only root filesystem, the state dir on an emptyDir
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/lib/paygate"]]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )

    service = k8s_objects("Service")[folder]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in service["spec"]["ports"]] == [spec.port]


def test_k8s_autoscales_the_gateway_and_the_consumers() -> None:
    hpas = k8s_objects("HorizontalPodAutoscaler")
    expected = {"gateway", "payment-service", "order-service", "notification-service"}
    expected &= set(FOLDERS)
    assert expected <= set(hpas)
    for name in expected:
        target = hpas[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert hpas[name]["spec"]["minReplicas"] >= 2


def env_names(container: dict[str, Any]) -> set[str]:
    """Every variable a container gets: its `env` plus the keys of its envFrom sources."""
    config_maps = k8s_objects("ConfigMap")
    secrets = k8s_objects("Secret")
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config_maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            secret = secrets[source["secretRef"]["name"]]
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    return names


def paygate_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, obj in k8s_objects(kind).items():
            for container in containers(obj["spec"]["template"]["spec"]):
                folder = image_folder(container["image"])
                if folder:
                    yield f"{kind}/{name}/{container['name']}", container


def test_k8s_sets_only_variables_the_services_read() -> None:
    seen = 0
    for where, container in paygate_containers():
        unknown = env_names(container) - known_variables(image_folder(container["image"]) or "")
        assert not unknown, f"{where}: {sorted(unknown)} are not settings of the service"
        seen += 1
    assert seen >= 2 * len(FOLDERS)


def test_k8s_migration_job_migrates_every_service_in_order() -> None:
    job = k8s_objects("Job")["paygate-migrate"]
    pod = job["spec"]["template"]["spec"]
    steps = [(image_folder(c["image"]), c["args"]) for c in pod["initContainers"]]
    with_migrations = {f for f in FOLDERS if (ROOT / f / "alembic.ini").exists()}
    assert {f for f, _ in steps} == with_migrations
    assert all(args == ["migrate"] for _, args in steps)
    assert steps[0][0] == "user-service"
    # each step gets the same settings as its Deployment (production validates them)
    deployments = k8s_objects("Deployment")
    for container in pod["initContainers"]:
        folder = image_folder(container["image"]) or ""
        [serving] = deployments[folder]["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == serving["envFrom"], folder


def test_k8s_topic_job_creates_all_topics() -> None:
    [container] = k8s_objects("Job")["paygate-kafka-topics"]["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert sorted(env["TOPICS"].split()) == sorted(ALL_TOPICS)


REAL_LOOKING = re.compile(
    r"sk_live_|rk_live_|-----BEGIN [A-Z ]*PRIVATE KEY-----|whsec_[A-Za-z0-9]{20,}"
)


def test_secrets_are_placeholders() -> None:
    secrets = k8s_objects("Secret")
    assert secrets
    for name, secret in secrets.items():
        values = {**secret.get("stringData", {}), **secret.get("data", {})}
        for key, value in values.items():
            assert "CHANGE-ME" in value or value.endswith("@example.com"), f"{name}.{key}"
            assert not REAL_LOOKING.search(value), f"{name}.{key}"
    for path in [
        ROOT / "docker-compose.yml",
        ROOT / "docker-compose.prod.yml",
        ROOT / ".env.example",
    ]:
        assert not REAL_LOOKING.search(path.read_text()), path


@pytest.mark.parametrize("folder", FOLDERS)
def test_k8s_placeholders_cannot_go_live(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Secret templates as shipped make the service refuse to start in production."""
    [serving] = k8s_objects("Deployment")[folder]["spec"]["template"]["spec"]["containers"]
    config_maps, secrets = k8s_objects("ConfigMap"), k8s_objects("Secret")
    for source in serving["envFrom"]:
        if "configMapRef" in source:
            values = config_maps[source["configMapRef"]["name"]]["data"]
        else:
            values = secrets[source["secretRef"]["name"]]["stringData"]
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    for entry in serving.get("env", []):
        monkeypatch.setenv(entry["name"], entry["value"])
    spec = next(s for s in SERVICES if s.folder == folder)
    with pytest.raises(ValidationError, match="refusing to start in production"):
        settings_class(spec.package)()


# --- TLS on the public edge ---------------------------------------------------------------


def _k8s(kind: str) -> dict[str, Any]:
    found = {}
    for path in (ROOT / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                found[doc["metadata"]["name"]] = doc
    return found


def test_the_ingress_terminates_tls_for_the_gateway_only() -> None:
    ingresses = _k8s("Ingress")
    assert list(ingresses) == ["gateway"]
    spec = ingresses["gateway"]["spec"]
    (tls,) = spec["tls"]
    assert tls["secretName"] and tls["hosts"]
    (rule,) = spec["rules"]
    assert rule["host"] in tls["hosts"]
    backends = [p["backend"]["service"] for p in rule["http"]["paths"]]
    assert backends == [{"name": "gateway", "port": {"name": "http"}}]
    annotations = ingresses["gateway"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"


def test_metrics_are_on_their_own_port_that_nothing_routes() -> None:
    gateway = _k8s("Deployment")["gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GATEWAY_METRICS_PORT"] == "9464"
    service_ports = [p["port"] for p in _k8s("Service")["gateway"]["spec"]["ports"]]
    assert 9464 not in service_ports


def test_production_compose_gateway_serves_https_from_mounted_secrets() -> None:
    prod = load_compose("docker-compose.prod.yml")
    gateway = prod["services"]["gateway"]
    env = gateway["environment"]
    assert env["GATEWAY_TLS_CERT_FILE"] == "/run/secrets/gateway_tls_cert"
    assert env["GATEWAY_TLS_KEY_FILE"] == "/run/secrets/gateway_tls_key"
    assert set(gateway["secrets"]) == {"gateway_tls_cert", "gateway_tls_key"}
    assert prod["secrets"]["gateway_tls_cert"]["file"] == "${GATEWAY_TLS_CERT:?must be set}"


def test_the_entrypoint_passes_the_certificate_to_uvicorn(tmp_path: Path) -> None:
    stub = tmp_path / "uvicorn"
    stub.write_text('#!/bin/sh\necho "uvicorn $*"\n')
    stub.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PAYGATE_SERVICE": "gateway",
        "GATEWAY_TLS_CERT_FILE": "/run/secrets/gateway_tls_cert",
        "GATEWAY_TLS_KEY_FILE": "/run/secrets/gateway_tls_key",
    }
    entrypoint = ROOT / "deploy" / "docker-entrypoint.sh"
    out = subprocess.run(
        ["sh", str(entrypoint)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[out.index("--ssl-certfile") + 1] == "/run/secrets/gateway_tls_cert"
    assert out[out.index("--ssl-keyfile") + 1] == "/run/secrets/gateway_tls_key"
    plain = {k: v for k, v in env.items() if not k.startswith("GATEWAY_TLS")}
    out = subprocess.run(
        ["sh", str(entrypoint)], env=plain, capture_output=True, text=True, check=True
    ).stdout
    assert "--ssl-certfile" not in out  # no certificate: plain HTTP, as before
