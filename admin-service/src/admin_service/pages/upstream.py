"""Calls the pages make to the services that own the data, as the signed-in user (their JWT)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from admin_service.pages.session import PageSession
from paygate_common.deps import app_state
from paygate_common.logging import REQUEST_ID_HEADER, current_request_id


class Upstream:
    """One pooled client; each call names the owner by its registry name ("payment", ...)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self,
        request: Request,
        session: PageSession | None,
        service: str,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> httpx.Response:
        settings = request.app.state.settings
        headers = dict(kwargs.pop("headers", {}) or {})
        if session is not None:
            headers.update(session.auth)
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        url = settings.service_url(service) + path
        try:
            return await self.client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            # a page shows the outage instead of failing: a 503 the template can explain
            return httpx.Response(
                503,
                json={
                    "code": "dependency_unavailable",
                    "detail": f"{service}: {type(exc).__name__}",
                },
            )


# The pages' dependency on the lifespan's one client.
UpstreamDep = Annotated[Upstream, Depends(app_state("upstream"))]
