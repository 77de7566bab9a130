"""A local certificate authority and a localhost certificate for `make run TLS=1` (trustme)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from paygate_common.services import spec_for
from paygate_devstack.services import ServiceProcess

HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalTls:
    """Where the files are: trust `ca`, serve with `cert` (chain) and `key`."""

    directory: Path
    ca: Path
    cert: Path
    key: Path


def ensure_local_tls(directory: Path) -> LocalTls:
    """Create the CA and the gateway's certificate once per state dir (FRESH=1 makes new ones);
    the CA's private key is not kept: nothing else can ever be signed with it."""
    tls = LocalTls(
        directory,
        directory / "paygate-local-ca.pem",
        directory / "gateway.pem",
        directory / "gateway-key.pem",
    )
    if tls.ca.exists() and tls.cert.exists() and tls.key.exists():
        return tls
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca = trustme.CA(organization_name="paygate local development CA")
    leaf = ca.issue_cert(*HOSTS, organization_name="paygate local gateway")
    ca.cert_pem.write_to_path(str(tls.ca))
    leaf.private_key_pem.write_to_path(str(tls.key))
    tls.key.chmod(0o600)
    with open(tls.cert, "wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    return tls


def trust_instructions(tls: LocalTls) -> str:
    """How to make a browser / curl trust the local CA, per platform."""
    ca = tls.ca
    return "\n".join(
        [
            f"HTTPS certificate for {', '.join(HOSTS)} signed by a local CA: {ca}",
            f"  curl:    curl --cacert {ca} https://127.0.0.1:{spec_for('gateway').port}/health",
            "  Linux:   sudo cp "
            f"{ca} /usr/local/share/ca-certificates/paygate-local-ca.crt && sudo update-ca-certificates"
            "   (Fedora: /etc/pki/ca-trust/source/anchors/ + sudo update-ca-trust;"
            " Firefox and Chrome keep their own store: certutil -d sql:$HOME/.pki/nssdb"
            f" -A -t C,, -n paygate-local -i {ca})",
            "  macOS:   sudo security add-trusted-cert -d -r trustRoot -k "
            f"/Library/Keychains/System.keychain {ca}",
            f"  Windows: certutil -addstore -f Root {ca}   (in an administrator prompt)",
            "Remove it the same way when you are done; FRESH=1 makes a new CA.",
        ]
    )


def gateway_tls_env(tls: LocalTls) -> dict[str, str]:
    """The gateway process's TLS: uvicorn's CLI reads `UVICORN_*` (it owns the socket), the
    gateway's settings learn that HTTPS is on."""
    return {
        "UVICORN_SSL_CERTFILE": str(tls.cert),
        "UVICORN_SSL_KEYFILE": str(tls.key),
        "GATEWAY_TLS_CERT_FILE": str(tls.cert),
        "GATEWAY_TLS_KEY_FILE": str(tls.key),
    }


class HttpsServiceProcess(ServiceProcess):
    """A `ServiceProcess` served over HTTPS: its URL and readiness probe trust the local CA."""

    def __init__(self, *args: Any, ca: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ca = ca

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.get(f"{self.url}/ready", timeout=2, verify=context).status_code == 200
