"""One API reference for the suite: every upstream's OpenAPI document under its public prefix.

Fetched with httpx off the hot path, merged, cached as bytes; refreshed periodically and as soon
as a breaker closes (an upstream came back, maybe with a new version).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

import httpx
import orjson

from gateway.routes import Route, RouteTable
from paygate_common.errors import document_problems

log = logging.getLogger("paygate.gateway.openapi")

# Upstream paths that are never part of the public API, even if a prefix happened to cover them.
HIDDEN_PREFIXES = ("/internal", "/health", "/ready", "/metrics", "/docs", "/openapi.json")
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
BEARER_SCHEME = "bearerAuth"
# Merchant API keys travel the same way as JWTs (`Authorization: Bearer pgk_live_…`); the
# gateway tells them apart by the prefix. Offered beside every JWT requirement.
API_KEY_SCHEME = "apiKeyAuth"
# What `routes.is_safe_path` lets through in one path parameter: no separator, no `%` (every
# escape the gateway refuses is one), no NUL, not `.`/`..` (no leading dot at all, for a regex
# without look-ahead). Stated in the merged document so its 400 `invalid_path` is no surprise.
SAFE_PATH_PARAMETER = r"^[^/\\%\x00.][^/\\%\x00]*$"


def _hidden(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in HIDDEN_PREFIXES)


def public_path(routes: list[Route], upstream_path: str) -> tuple[Route, str] | None:
    """The public path (and its route) for a service's upstream path, or None if not routed."""
    if _hidden(upstream_path):
        return None
    best: Route | None = None
    for route in routes:
        up = route.upstream_prefix
        if (upstream_path == up or upstream_path.startswith(up + "/")) and (
            best is None or len(up) > len(best.upstream_prefix)
        ):
            best = route
    if best is None:
        return None
    return best, best.prefix + upstream_path[len(best.upstream_prefix) :]


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge_specs(
    specs: dict[str, dict[str, Any]],
    table: RouteTable,
    *,
    title: str = "paygate API",
    version: str = "1",
) -> dict[str, Any]:
    """Merge upstream documents (by service name) into one, keyed by public paths.

    Component names that collide with a different definition are prefixed with the service's
    name (`Order` → `OrderServiceOrder`) and that service's `$ref`s rewritten accordingly.
    """
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Every public endpoint of the paygate suite, served through the gateway. "
                "Protected routes need `Authorization: Bearer <access token>` from "
                "`POST /api/v1/auth/signin` (or the OAuth2 form at `POST /api/v1/auth/token`, "
                "which the Authorize button uses), or a merchant API key "
                "(`Authorization: Bearer pgk_live_…` / `pgk_test_…`) from `POST /api/v1/api-keys`."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {
            "securitySchemes": {
                BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                API_KEY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "API key (pgk_live_… or pgk_test_…)",
                    "description": "A merchant API key, sent as a bearer token.",
                },
            }
        },
        "tags": [],
    }
    components: dict[str, dict[str, Any]] = merged["components"]
    seen_tags: set[str] = set()
    for service in sorted(specs):
        spec = copy.deepcopy(specs[service])
        routes = [r for r in table.routes if r.service == service]
        if not routes:
            continue
        renames: dict[str, str] = {}
        schemes = (spec.get("components") or {}).get("securitySchemes")
        if isinstance(schemes, dict):
            # Any service's OAuth2 scheme names the token endpoint user-service serves: map it
            # through the whole table, not only this service's routes, before comparing (each
            # service's `/auth/token` scheme is the same one, not eight renamed copies; and
            # operations name schemes directly, so a renamed scheme would be one nobody uses).
            for name, definition in schemes.items():
                schemes[name] = _rewrite_token_urls(definition, list(table.routes))
        for section, entries in (spec.get("components") or {}).items():
            if not isinstance(entries, dict):
                continue
            target = components.setdefault(section, {})
            for name, definition in entries.items():
                if name in target and target[name] != definition:
                    new = f"{_camel(service)}Service{name}"
                    renames[f"#/components/{section}/{name}"] = f"#/components/{section}/{new}"
        spec = _rewrite_refs(spec, renames) if renames else spec
        for section, entries in (spec.get("components") or {}).items():
            if not isinstance(entries, dict):
                continue
            target = components.setdefault(section, {})
            for name, definition in entries.items():
                ref = f"#/components/{section}/{name}"
                if ref in renames:
                    name = renames[ref].rsplit("/", 1)[1]
                target.setdefault(name, definition)
        for path, item in (spec.get("paths") or {}).items():
            mapped = public_path(routes, path)
            if mapped is None:
                continue
            route, public = mapped
            item = _constrain_path_parameters(dict(item))
            for method, op in list(item.items()):
                if method not in HTTP_METHODS or not isinstance(op, dict):
                    continue
                op = dict(op)
                if op.get("operationId"):
                    op["operationId"] = f"{service}_{op['operationId']}"
                if not op.get("tags"):
                    op["tags"] = [service]
                if not route.public:
                    requirements = list(op.get("security") or [{BEARER_SCHEME: []}])
                    if {API_KEY_SCHEME: []} not in requirements:
                        requirements.append({API_KEY_SCHEME: []})
                    op["security"] = requirements
                item[method] = op
                for tag in op["tags"]:
                    if tag not in seen_tags:
                        seen_tags.add(tag)
                        merged["tags"].append({"name": tag})
            merged["paths"][public] = item
        for tag in spec.get("tags") or []:
            if isinstance(tag, dict) and tag.get("name") in seen_tags:
                for existing in merged["tags"]:
                    if existing["name"] == tag["name"]:
                        existing.update(tag)
    merged["paths"] = dict(sorted(merged["paths"].items()))
    protected = {public for public, route in _routes_by_path(merged, table) if not route.public}
    return document_problems(merged, extra=lambda path, _, op: _edge_statuses(path, op, protected))


def _routes_by_path(merged: dict[str, Any], table: RouteTable) -> list[tuple[str, Route]]:
    out = []
    for path in merged["paths"]:
        route = table.match(path.split("{", 1)[0].rstrip("/") or path)
        if route is not None:
            out.append((path, route))
    return out


def _edge_statuses(path: str, op: dict[str, Any], protected: set[str]) -> set[int]:
    """What the gateway itself can answer before (or instead of) the service."""
    statuses = {400, 429, 502, 503, 504}  # invalid_path/duplicate_header, limits, upstream down
    if "requestBody" in op:
        statuses.add(413)
    if path in protected:
        statuses.add(401)
    return statuses


def _constrain_path_parameters(item: dict[str, Any]) -> dict[str, Any]:
    """Free-form string path parameters get the pattern the gateway enforces."""

    def constrain(params: Any) -> Any:
        if not isinstance(params, list):
            return params
        out = []
        for param in params:
            if isinstance(param, dict) and param.get("in") == "path":
                schema = dict(param.get("schema") or {})
                if schema.get("type") == "string" and not ({"pattern", "format"} & set(schema)):
                    schema["pattern"] = SAFE_PATH_PARAMETER
                    param = {**param, "schema": schema}
            out.append(param)
        return out

    for key, value in list(item.items()):
        if key == "parameters":
            item[key] = constrain(value)
        elif key in HTTP_METHODS and isinstance(value, dict) and "parameters" in value:
            item[key] = {**value, "parameters": constrain(value["parameters"])}
    return item


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _rewrite_token_urls(scheme: Any, routes: list[Route]) -> Any:
    """OAuth2 flows name upstream-relative token URLs (`/auth/token`): point them at the gateway."""
    if not isinstance(scheme, dict) or "flows" not in scheme:
        return scheme
    scheme = copy.deepcopy(scheme)
    for flow in scheme["flows"].values():
        for key in ("tokenUrl", "authorizationUrl", "refreshUrl"):
            url = flow.get(key)
            if isinstance(url, str):
                absolute = url if url.startswith("/") else "/" + url
                mapped = public_path(routes, absolute)
                if mapped is not None:
                    flow[key] = mapped[1]
    return scheme


class SpecCache:
    """The last good document per upstream and the merged bytes served at `/openapi.json`."""

    def __init__(
        self,
        table: RouteTable,
        service_urls: dict[str, str],
        *,
        refresh_seconds: float = 30.0,
        timeout: float = 3.0,
    ) -> None:
        self.table = table
        self.service_urls = service_urls
        self.refresh_seconds = refresh_seconds
        self.specs: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self._client = httpx.AsyncClient(timeout=timeout)
        self._merged: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def refresh(self, services: list[str] | None = None) -> None:
        async with self._lock:
            names = services or self.table.services
            results = await asyncio.gather(*(self._fetch(n) for n in names))
            changed = False
            for name, doc in zip(names, results, strict=True):
                if doc is not None and self.specs.get(name) != doc:
                    self.specs[name] = doc
                    changed = True
            if changed or self._merged is None:
                self._merged = orjson.dumps(merge_specs(self.specs, self.table))

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        url = f"{self.service_urls[service]}/openapi.json"
        try:
            response = await self._client.get(url)
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.errors[service] = type(exc).__name__
            return None
        self.errors.pop(service, None)
        return doc if isinstance(doc, dict) else None

    def upstream_recovered(self, service: str) -> None:
        """Called when a breaker closes: refetch soon, the service may have a new version."""
        self._wake.set()

    async def document(self) -> bytes:
        if self._merged is None or self.errors:
            # Nothing yet or someone missing: try now instead of waiting for the next round.
            await self.refresh(list(self.errors) or None)
        assert self._merged is not None
        return self._merged

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bad document must not kill the refresher
                log.exception("refreshing the merged OpenAPI document failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_seconds)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
