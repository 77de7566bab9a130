"""One API reference: the merged spec lists every public path and nothing internal; offline docs."""

from __future__ import annotations

import re

import httpx
from gateway_support import UpstreamState

from gateway.routes import ROUTES

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
    assert spec["paths"]["/api/v1/orders"]["post"]["security"] == [
        {"bearerAuth": []},
        {"apiKeyAuth": []},
    ]
    assert "security" not in spec["paths"]["/api/v1/webhooks/stripe"]["post"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_every_status_the_edge_can_answer_is_documented_as_problem_json(
    gateway: str, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
    create = spec["paths"]["/api/v1/orders"]["post"]["responses"]
    webhook = spec["paths"]["/api/v1/webhooks/stripe"]["post"]["responses"]
    for status in ("400", "401", "415", "429", "502", "503", "504"):
        assert create[status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }, status
    assert "401" not in webhook  # public: the gateway asks for no token there
    assert {"400", "415", "429", "503"} <= set(webhook)


async def test_colliding_component_names_are_prefixed_not_overwritten(
    gateway: str, state: UpstreamState
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    # Every error is the one shared Problem schema (FastAPI's HTTPValidationError, which both
    # upstreams define identically, is not what a client receives and is gone).
    assert "Problem" in schemas and "HTTPValidationError" not in schemas
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
    # every service the route table names; the four with a stand-in here are up
    assert set(health["upstreams"]) == {r.service for r in ROUTES}
    for name in ("user", "order", "payment", "notification"):
        assert health["upstreams"][name]["ready"] == "ok"
        assert health["upstreams"][name]["circuit"]["state"] == "closed"
    assert health["rate_limit_store"] == "redis"
    assert ready.status_code == 200


async def test_path_parameters_state_what_the_gateway_lets_through(
    gateway: str, state: UpstreamState
) -> None:
    from gateway.openapi import SAFE_PATH_PARAMETER

    async with httpx.AsyncClient(base_url=gateway) as client:
        spec = (await client.get("/openapi.json")).json()
        refused = await client.get("/api/v1/orders/a%5Cb")  # what the pattern excludes: 400
    (param,) = spec["paths"]["/api/v1/orders/{order_id}"]["get"]["parameters"]
    assert param["schema"]["pattern"] == SAFE_PATH_PARAMETER
    assert not re.match(SAFE_PATH_PARAMETER, "a\\b") and re.match(SAFE_PATH_PARAMETER, "o-1")
    assert refused.status_code == 400
