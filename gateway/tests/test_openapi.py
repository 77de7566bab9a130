"""One API reference: the merged spec lists every public path and nothing internal; offline docs."""

from __future__ import annotations

import re

import httpx
from gateway_support import UpstreamState

from paygate_common.services import SERVICES

PUBLIC_PATHS = {
    "/api/v1/auth/signup",
    "/api/v1/auth/signin",
    "/api/v1/users/me",
    "/api/v1/orders",
    "/api/v1/orders/{order_id}",
    "/api/v1/orders/slow",
    "/api/v1/orders/flaky",
    "/api/v1/payments",
    "/api/v1/webhooks/stripe",
    "/api/v1/notifications",
    "/api/v1/admin/notifications/dlq",
}


async def test_merged_spec_lists_every_public_path_and_no_internal_one(
    gateway: str, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert paths == PUBLIC_PATHS
    assert not any("internal" in p or p.endswith(("/health", "/ready", "/metrics")) for p in paths)
    # protected operations carry the bearer scheme, public ones do not
    assert spec["paths"]["/api/v1/orders"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/webhooks/stripe"]["post"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_colliding_component_names_are_prefixed_not_overwritten(
    gateway: str, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    # user-service and order-service both call their model "Item"? No: UserItem/OrderItem, but
    # both define FastAPI's HTTPValidationError identically, which must stay one schema.
    assert "HTTPValidationError" in schemas
    assert "UserItem" in schemas and "OrderItem" in schemas
    refs = set(re.findall(r'"\$ref":\s*"([^"]+)"', httpx.Response(200, json=spec).text))
    for ref in refs:
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_merge_renames_conflicting_components() -> None:
    from gateway.openapi import merge_specs
    from gateway.routes import RouteTable

    def spec(prefix: str, fields: dict[str, object]) -> dict[str, object]:
        return {
            "paths": {
                prefix: {
                    "get": {
                        "responses": {
                            "200": {
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/Item"}
                                    }
                                }
                            }
                        }
                    }
                },
                "/internal/x": {"get": {}},
            },
            "components": {"schemas": {"Item": {"type": "object", "properties": fields}}},
        }

    merged = merge_specs(
        {"order": spec("/orders", {"a": {}}), "payment": spec("/payments", {"b": {}})},
        RouteTable(),
    )
    schemas = merged["components"]["schemas"]
    assert schemas["Item"]["properties"] == {"a": {}}
    assert schemas["PaymentServiceItem"]["properties"] == {"b": {}}
    ref = merged["paths"]["/api/v1/payments"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    assert ref == "#/components/schemas/PaymentServiceItem"
    assert set(merged["paths"]) == {"/api/v1/orders", "/api/v1/payments"}


async def test_docs_reference_no_external_host(gateway: str, state: UpstreamState) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        html = (await client.get("/docs")).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        for asset in assets:
            assert asset.startswith("/"), asset
            assert (await client.get(asset)).status_code == 200
    assert not re.search(r"https?://", html.replace("http://www.w3.org", ""))
    assert "/openapi.json" in html


async def test_health_reports_the_gateway_and_every_upstream(
    gateway: str, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        health = (await client.get("/health")).json()
        ready = await client.get("/ready")
    assert health["service"] == "gateway"
    assert set(health["upstreams"]) == {s.name for s in SERVICES if s.routes}
    for upstream in health["upstreams"].values():
        assert upstream["ready"] == "ok"
        assert upstream["circuit"]["state"] == "closed"
    assert health["rate_limit_store"] == "redis"
    assert ready.status_code == 200
