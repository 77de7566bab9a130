"""One `run()` for every service: uvicorn on the host and port from its settings, flags from the registry."""

from __future__ import annotations

import importlib
from typing import Any

from paygate_common.services import spec_for
from paygate_common.settings import ServiceSettings


def settings_class(name: str) -> type[ServiceSettings]:
    """The service's settings class: the `ServiceSettings` subclass naming it in its package."""
    spec = spec_for(name)
    module = importlib.import_module(f"{spec.package}.settings")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value.__dict__.get("registry_name") == spec.name
        ):
            return value
    raise LookupError(f"{spec.package}.settings declares no ServiceSettings for {spec.name!r}")


def uvicorn_options(name: str, settings: ServiceSettings) -> dict[str, Any]:
    """What `run_service` hands uvicorn; the launcher and the entrypoint pass the same as flags."""
    spec = spec_for(name)
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "log_config": None,  # the service's own JSON logging (paygate_common.logging)
        "access_log": False,
        "timeout_graceful_shutdown": 20,
        **spec.uvicorn,
    }
    # HTTPS where the service is given a certificate and its key (the gateway's public edge)
    cert, key = getattr(settings, "tls_cert_file", None), getattr(settings, "tls_key_file", None)
    if cert and key:
        options.update(ssl_certfile=cert, ssl_keyfile=key)
    forwarded = getattr(settings, "forwarded_allow_ips", None)
    if forwarded is not None and spec.uvicorn.get("proxy_headers"):
        options["forwarded_allow_ips"] = forwarded
    return options


def run_service(name: str) -> None:
    """Serve one service until interrupted (each service's `main.run` and console script)."""
    import uvicorn

    spec = spec_for(name)
    settings = settings_class(name)()
    uvicorn.run(spec.app, **uvicorn_options(name, settings))
