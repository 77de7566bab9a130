"""Every public prefix reaches its service with `/api/v1` dropped; nothing else is reachable."""

from __future__ import annotations

import httpx
import pytest
from gateway_support import Upstreams, UpstreamState, raw_request

from gateway.routes import ROUTES, RouteTable, is_safe_path

# (public path, service, upstream path) for every route in the table, plus a deeper path.
CASES = [
    ("/api/v1/auth/signup", "user", "/auth/signup"),
    ("/api/v1/auth/signin", "user", "/auth/signin"),
    ("/api/v1/auth/token", "user", "/auth/token"),
    ("/api/v1/auth/refresh", "user", "/auth/refresh"),
    ("/api/v1/users/me", "user", "/users/me"),
    ("/api/v1/users/me/payment-methods", "user", "/users/me/payment-methods"),
    ("/api/v1/orders", "order", "/orders"),
    ("/api/v1/orders/0b7c/status", "order", "/orders/0b7c/status"),
    ("/api/v1/payments", "payment", "/payments"),
    ("/api/v1/payments/pay_1/refunds", "payment", "/payments/pay_1/refunds"),
    ("/api/v1/webhooks/stripe", "payment", "/webhooks/stripe"),
    ("/api/v1/notifications", "notification", "/notifications"),
    ("/api/v1/admin/notifications/dlq", "notification", "/admin/notifications/dlq"),
    ("/api/v1/webhooks", "notification", "/webhooks"),
    ("/api/v1/webhooks/settings/rotate-secret", "notification", "/webhooks/settings/rotate-secret"),
]


def test_every_route_in_the_table_is_covered() -> None:
    covered = {RouteTable().match(public) for public, _, _ in CASES}
    assert covered == set(ROUTES)


@pytest.mark.parametrize(("public", "service", "upstream_path"), CASES)
async def test_prefix_reaches_its_service_without_api_v1(
    gateway: str,
    upstreams: Upstreams,
    state: UpstreamState,
    public: str,
    service: str,
    upstream_path: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post(
            public + "?page=2&q=a%20b", content=b'{"x": 1}', headers=upstreams.auth()
        )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["service"] == service
    assert seen["path"] == upstream_path
    assert seen["query"] == "page=2&q=a%20b"
    assert seen["method"] == "POST"
    assert seen["body"] == '{"x": 1}'


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_method_and_body_are_forwarded(
    gateway: str, upstreams: Upstreams, state: UpstreamState, method: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.request(
            method, "/api/v1/orders/o1/note", content=b"hello", headers=upstreams.auth()
        )
    assert response.json()["method"] == method
    assert response.json()["body_len"] == 5


@pytest.mark.parametrize(
    "path", ["/api/v1/ordersX", "/api/v1/unknown/x", "/api/v2/orders", "/api/v1/internal/users"]
)
async def test_unrouted_paths_are_404(gateway: str, state: UpstreamState, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert sum(state.hits.values()) == 0


@pytest.mark.parametrize(
    "target",
    [
        "/internal/order/secret",
        "/api/v1/orders/../../internal/order/secret",
        "/api/v1/orders/../internal/order/secret",
        "/api/v1/orders/%2e%2e/internal/order/secret",
        "/api/v1/orders/%2E%2E%2Finternal/order/secret",
        "/api/v1/orders/..%2finternal/order/secret",
        "/api/v1/orders/%252e%252e/internal/order/secret",
        "/api/v1/orders/.%2e/internal/order/secret",
        "/api/v1/orders/..\\internal/order/secret",
        "/api/v1/%6frders/x",
        "/api/v1/orders/x%00/../../internal/order/secret",
    ],
)
async def test_internal_paths_are_unreachable_even_with_traversal_tricks(
    gateway: str, upstreams: Upstreams, state: UpstreamState, target: str
) -> None:
    token = upstreams.token()
    status, data = await raw_request(gateway, f"GET {target}", f"Authorization: Bearer {token}\r\n")
    assert status in (400, 404), data
    assert state.hits["INTERNAL"] == 0


def test_safe_path_rules() -> None:
    assert is_safe_path("/api/v1/orders/a.b/c..d", b"/api/v1/orders/a.b/c..d")
    assert is_safe_path("/api/v1/orders/a b", b"/api/v1/orders/a%20b")
    assert not is_safe_path("/api/v1/orders/../x", b"/api/v1/orders/../x")
    assert not is_safe_path("/api/v1/orders/./x", b"/api/v1/orders/./x")
    assert not is_safe_path("/api/v1/orders/%2e", b"/api/v1/orders/%252e")
