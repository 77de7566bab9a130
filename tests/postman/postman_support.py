"""Helpers for the Postman tests: the gateway's merged OpenAPI built in process, route matching."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.openapi import HTTP_METHODS, merge_specs
from gateway.routes import RouteTable
from paygate_devstack.services import implemented_services, repo_root

ROOT = repo_root(Path(__file__).resolve().parent)
sys.path.insert(0, str(ROOT / "tools" / "postman"))

import build_collection  # noqa: E402  (tools/ is not a package)

API = build_collection.API
__all__ = ["ROOT", "build_collection", "expected_runs", "merged_openapi", "routes_of"]


def merged_openapi() -> dict[str, Any]:
    """What the gateway serves at /openapi.json, from every implemented service's app."""
    specs: dict[str, dict[str, Any]] = {}
    for spec in implemented_services(ROOT):
        if spec.name == "gateway":
            continue
        module = importlib.import_module(f"{spec.package}.main")
        specs[spec.name] = module.create_app().openapi()
    merged: dict[str, Any] = merge_specs(specs, RouteTable())
    return merged


def routes_of(doc: dict[str, Any]) -> set[str]:
    """`METHOD /api/v1/path` for every operation, parameters written `{}`."""
    return {
        f"{method.upper()} {build_collection.normalise(path)}"
        for path, item in (doc.get("paths") or {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def request_items(collection: dict[str, Any]) -> list[dict[str, Any]]:
    """Every request item, depth first, in run order."""
    out: list[dict[str, Any]] = []

    def walk(items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if "item" in item:
                walk(item["item"])
            else:
                out.append(item)

    walk(collection["item"])
    return out


def request_path(item: dict[str, Any]) -> str | None:
    """The path after `{{base_url}}` with every `{{variable}}` segment as `{}`; None elsewhere."""
    raw: str = item["request"]["url"]["raw"]
    if not raw.startswith("{{base_url}}"):
        return None  # the gateway's root, or a provider's page the payer opens
    path = raw[len("{{base_url}}") :].split("?", 1)[0]
    return API + re.sub(r"\{\{[^}]+\}\}", "{}", path)


def _segments_match(template: str, path: str) -> int | None:
    """How many template parameters `path` fills, or None when it is another route."""
    t_parts, p_parts = template.split("/"), path.split("/")
    if len(t_parts) != len(p_parts):
        return None
    filled = 0
    for t, p in zip(t_parts, p_parts, strict=True):
        if t == "{}":
            filled += 1
        elif t != p:
            return None
    return filled


def route_of(item: dict[str, Any], routes: set[str]) -> str | None:
    """The most specific documented route a request calls (`/rates/latest` before `/rates/{}`)."""
    path = request_path(item)
    if path is None:
        return None
    method = item["request"]["method"]
    best: tuple[int, str] | None = None
    for route in routes:
        r_method, template = route.split(" ", 1)
        if r_method != method:
            continue
        filled = _segments_match(template, path)
        if filled is not None and (best is None or filled < best[0]):
            best = (filled, route)
    return best[1] if best else None


def uncovered_routes(collection: dict[str, Any], routes: set[str]) -> set[str]:
    covered = {route_of(item, routes) for item in request_items(collection)}
    return routes - covered


def expected_runs(served: set[str]) -> list[str]:
    """Request names the collection runs against a gateway serving `served`, in order.

    The same rules the generated scripts apply: skipped when its route (or a route it
    requires) is not served, or when a variable it needs was set by no request that ran.
    """
    chained = build_collection.chain_vars()
    have: set[str] = set()
    ran: list[str] = []
    for _, req in build_collection.all_requests():
        if req.gate:  # off by default (run_gated=false), for the reason it names
            continue
        routes = [r for r in (req.route, *req.requires) if r is not None]
        if any(r not in served for r in routes):
            continue
        if any(v not in have for v in build_collection.needs(req, chained)):
            continue
        ran.append(req.name)
        have.update(req.pre_sets)
        have.update(req.sets)
    return ran
