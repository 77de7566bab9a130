"""`make run TLS=1`: a local CA, a localhost certificate, and the gateway served over HTTPS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from cryptography import x509

from paygate_devstack.process import free_port
from paygate_devstack.pytest_plugin import PaygateStack
from paygate_devstack.services import spec_for
from paygate_devstack.tls import (
    HttpsServiceProcess,
    ensure_local_tls,
    gateway_tls_env,
    trust_instructions,
)


def test_the_local_ca_and_certificate_are_made_once_and_name_localhost(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path / "tls")
    first = tls.cert.read_bytes()
    assert ensure_local_tls(tmp_path / "tls").cert.read_bytes() == first  # reused, not remade
    leaf = x509.load_pem_x509_certificates(first)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1"}
    assert oct(tls.key.stat().st_mode & 0o777) == "0o600"
    text = trust_instructions(tls)
    for platform in ("Linux", "macOS", "Windows"):
        assert platform in text
    assert str(tls.ca) in text


def test_the_launcher_serves_the_gateway_over_https_with_hsts(
    paygate_stack: PaygateStack, tmp_path: Path
) -> None:
    tls = ensure_local_tls(tmp_path / "tls")
    gateway = HttpsServiceProcess(
        spec_for("gateway"),
        # the gateway alone: no user-service to publish signing keys, so no JWT check
        env={**paygate_stack.env, **gateway_tls_env(tls), "GATEWAY_AUTH_ENABLED": "false"},
        port=free_port(),
        log_dir=tmp_path / "logs",
        ca=tls.ca,
    )
    gateway.start(timeout=90)
    try:
        assert gateway.url.startswith("https://")
        health = httpx.get(
            f"{gateway.url}/health", verify=ssl.create_default_context(cafile=str(tls.ca))
        )
        assert health.status_code == 200
        assert health.headers["strict-transport-security"].startswith("max-age=")
    finally:
        gateway.stop()
