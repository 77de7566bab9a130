"""Provider choice: which providers take new payments and which is the default (item of config).

The starting value comes from the settings (`PAYMENT_SERVICE_ENABLED_PROVIDERS`,
`PAYMENT_SERVICE_CONNECTOR`); admin-service's `payments.providers` key replaces it, loaded at
start-up and on every `config.changed`. Disabling a provider stops NEW payments only: the
payments it already holds are still captured, voided and refunded through it.
"""

from __future__ import annotations

import logging
from typing import Any

from paygate_common.config import ConfigView, ProvidersConfig

log = logging.getLogger("payment_service.providers")

CONFIG_KEY = "payments.providers"


class ProviderChoice:
    """The live `payments.providers` value of this process."""

    def __init__(self, *, enabled: list[str], default: str) -> None:
        self.view: ConfigView[ProvidersConfig] = ConfigView(
            CONFIG_KEY, ProvidersConfig, default=ProvidersConfig(enabled=enabled, default=default)
        )

    @property
    def enabled(self) -> frozenset[str]:
        return frozenset(self.view.value.enabled)

    @property
    def default(self) -> str:
        return self.view.value.default

    def apply(self, value: Any, version: int) -> bool:
        """A `config.changed` of our key; an older or invalid version is ignored (logged)."""
        return self.view.apply(value, version)

    async def load(self, client: Any) -> None:
        await self.view.load(client)
