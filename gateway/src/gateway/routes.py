"""The routing table: public prefix → upstream service and path, public or protected, limits.

The routes come from the service registry (`paygate_common.services`): a later service declares
its `PublicRoute`s there and nothing here changes. Only prefixes listed are reachable; an
upstream's `/internal/*`, `/health`, `/ready` and `/metrics` are never routed because no public
prefix maps onto them, and `is_safe_path` refuses dot-segments and encoded separators that could
climb out of a prefix on a server that normalises paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from paygate_common.services import API_PREFIX, SERVICES, ServiceSpec


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str  # public path prefix; matches itself and anything below `prefix + "/"`
    service: str  # key of `settings.service_urls` ("user", "order", ...)
    upstream_prefix: str  # what `prefix` becomes upstream (the `/api/v1` part is dropped)
    public: bool = False  # no JWT at the edge (the upstream may still check its own way)
    # Name of a settings field holding a stricter limit that replaces the anon/user limit for
    # this route, counted per client IP (sign-in and sign-up are attacked by IP, not by user).
    limit: str | None = None
    timeout: float | None = None  # seconds; None = settings.upstream_timeout_seconds
    # An HTML surface at the gateway root (`/admin`, `/dashboard`): the upstream is told its
    # public prefix (X-Forwarded-Prefix) so its links and redirects point back here.
    web: bool = False
    prefix_slash: str = field(init=False, repr=False, compare=False)
    prefix_bytes: bytes = field(init=False, repr=False, compare=False)
    upstream_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix_slash", self.prefix + "/")
        object.__setattr__(self, "prefix_bytes", self.prefix.encode("ascii"))
        object.__setattr__(self, "upstream_bytes", self.upstream_prefix.encode("ascii"))

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix_slash)

    def upstream_path_for(self, public_path: str) -> str:
        return self.upstream_prefix + public_path[len(self.prefix) :]


def routes_from_registry(services: tuple[ServiceSpec, ...] = SERVICES) -> tuple[Route, ...]:
    """Every public route the registry declares (`paygate_common.services`)."""
    return tuple(
        Route(
            r.gateway_prefix,
            spec.name,
            r.upstream_prefix,
            public=r.public,
            limit=r.limit,
            timeout=r.timeout,
            web=r.web,
        )
        for spec in services
        for r in spec.routes
    )


ROUTES: tuple[Route, ...] = routes_from_registry()


class RouteTable:
    """Precomputed lookup: the segment after `/api/v1/` picks a short list, longest prefix first."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = routes
        by_segment: dict[str, list[Route]] = {}
        web: list[Route] = []
        for route in routes:
            if route.web:
                if route.prefix.startswith("/api/") or route.prefix.count("/") != 1:
                    raise ValueError(f"web route {route.prefix!r} must be one segment at the root")
                web.append(route)
                continue
            if not route.prefix.startswith(API_PREFIX + "/"):
                raise ValueError(f"route {route.prefix!r} is not under {API_PREFIX}/")
            if route.upstream_prefix.startswith("/internal"):
                raise ValueError(f"route {route.prefix!r} would expose an internal path")
            segment = route.prefix[len(API_PREFIX) + 1 :].split("/", 1)[0]
            by_segment.setdefault(segment, []).append(route)
        self._by_segment = {
            seg: tuple(sorted(rs, key=lambda r: len(r.prefix), reverse=True))
            for seg, rs in by_segment.items()
        }
        self._start = len(API_PREFIX) + 1
        self._web = tuple(web)

    def match(self, path: str) -> Route | None:
        if not path.startswith("/api/v1/"):
            for route in self._web:
                if path == route.prefix or path.startswith(route.prefix_slash):
                    return route
            return None
        rest = path[self._start :]
        slash = rest.find("/")
        candidates = self._by_segment.get(rest if slash < 0 else rest[:slash])
        if candidates is None:
            return None
        for route in candidates:
            if path == route.prefix or path.startswith(route.prefix_slash):
                return route
        return None

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(r.service for r in self.routes))


# Percent-encodings of `.`, `/`, `\`, `%` and NUL: legitimate API paths never need them, and each
# can turn into a traversal on some server between here and the handler.
_DANGEROUS_ESCAPE = re.compile(rb"%(?:2[eEfF5]|5[cC]|00)")


def is_safe_path(path: str, raw_path: bytes) -> bool:
    """False for paths that could escape their prefix after decoding or normalisation."""
    if b"%" in raw_path and _DANGEROUS_ESCAPE.search(raw_path):
        return False
    if "\\" in path or "\x00" in path:
        return False
    if "/." in path:
        for segment in path.split("/"):
            if segment in (".", ".."):
                return False
    return True
