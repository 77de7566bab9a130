"""Request dependencies on what a service's lifespan built: its settings and its app-state objects."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from paygate_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def app_settings(request: Request) -> Any:
    """The service's settings, as `create_service_app` stored them on the app."""
    return request.app.state.settings


# `settings: SettingsDep[Settings]`: typed as the service's own Settings class, one dependency.
SettingsDep = Annotated[S, Depends(app_settings)]


@cache
def app_state(name: str) -> Callable[[Request], Any]:
    """A dependency answering `request.app.state.<name>` (one callable per name, so FastAPI's
    per-request dependency cache treats every use of a name as the same dependency).

    `ReaderDep = Annotated[SnapshotReader, Depends(app_state("rates_reader"))]`
    """

    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


__all__ = ["SettingsDep", "app_settings", "app_state"]
