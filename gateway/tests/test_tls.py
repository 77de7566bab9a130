"""HTTPS on the public edge: with a certificate and key the gateway serves TLS and sends HSTS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from gateway_support import PROTOCOLS, Upstreams, UpstreamState, gateway_settings, serve

from gateway.main import create_app


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_pem, chain, key = base / "ca.pem", base / "gateway.pem", base / "gateway-key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_pem.write_to_path(str(key))
    with open(chain, "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    yield ca_pem, chain, key


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_https_gateway_proxies_and_sends_hsts_on_every_answer(
    protocol: str,
    upstreams: Upstreams,
    state: UpstreamState,
    redis_server: object,
    tls_files: tuple[Path, Path, Path],
) -> None:
    ca_pem, chain, key = tls_files
    settings = gateway_settings(upstreams, redis_url=redis_server.url)  # type: ignore[attr-defined]
    app = create_app(settings)
    async with serve(
        app, http=PROTOCOLS[protocol], ssl_certfile=str(chain), ssl_keyfile=str(key)
    ) as (url, _):
        https = url.replace("http://", "https://")
        async with httpx.AsyncClient(
            base_url=https, verify=ssl.create_default_context(cafile=str(ca_pem))
        ) as client:
            proxied = await client.get("/api/v1/orders/o1", headers=upstreams.auth())
            refused = await client.get("/api/v1/orders/o1")  # the gateway's own 401
            health = await client.get("/health")
        async with httpx.AsyncClient(base_url=url) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/health")  # no cleartext on the TLS port
    assert proxied.status_code == 200
    assert proxied.json()["headers"]["x-forwarded-proto"] == "https"
    assert refused.status_code == 401
    for response in (proxied, refused, health):
        assert response.headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains"
        )


async def test_plain_http_gets_no_hsts(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        proxied = await client.get("/api/v1/orders/o1", headers=upstreams.auth())
        health = await client.get("/health")
    assert "strict-transport-security" not in proxied.headers
    assert "strict-transport-security" not in health.headers
