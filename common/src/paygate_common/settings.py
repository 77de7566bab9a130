"""Settings base: one class per service, env prefix first, unprefixed shared variables second."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from paygate_common.services import DEFAULT_SERVICE_URLS, spec_for

# Values that ship in the repository for local development; production must override them.
DEV_SECRET_MARKER = "dev-only"
DEFAULT_SERVICE_TOKEN_SECRET = f"{DEV_SECRET_MARKER}-service-token-secret-change-me-0123456789"


class _UnprefixedEnvSource(EnvSettingsSource):
    """Reads the same fields without the service prefix, so `DATABASE_URL` serves every service."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="", case_sensitive=False)


class ServiceSettings(BaseSettings):
    """What every service needs; subclasses add their own fields and set `env_prefix`.

    A variable named `<PREFIX><FIELD>` wins over the unprefixed `<FIELD>`; so `ENVIRONMENT`,
    `DATABASE_URL`, `REDIS_URL` and `KAFKA_BOOTSTRAP_SERVERS` configure the whole suite while
    `ORDER_SERVICE_DATABASE_URL` can still point one service elsewhere.

    A subclass names its registry entry (`registry_name: ClassVar[str] = "order"`); its env
    prefix, service name, schema and port then come from `paygate_common.services`.
    """

    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")

    registry_name: ClassVar[str | None] = None
    service_name: ClassVar[str] = "service"
    default_schema: ClassVar[str] = "public"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("registry_name")
        if name:
            spec = spec_for(name)
            cls.model_config["env_prefix"] = spec.env_prefix
            cls.service_name = spec.service_name
            cls.default_schema = spec.schema or "public"

    # Where the service listens; 0 = its port in the registry.
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/paygate"
    db_schema: str = ""
    db_pool_size: int = 10
    db_echo: bool = False

    redis_url: str = "redis://127.0.0.1:56379/0"

    kafka_bootstrap_servers: str = "127.0.0.1:59092"
    # Tansu (the local broker) has no InitProducerId; Apache Kafka should run with this on.
    kafka_enable_idempotence: bool = False
    kafka_client_id: str = ""
    # Idle latency knobs (issue #17). The producer sends at once (linger 0): the relay hands a
    # claimed batch to it in one go, so batching comes from the claim, not from waiting. A
    # consumer's fetch waits at most this long for data: Tansu answers an empty fetch only when
    # the wait runs out, so it bounds each hop's latency on a quiet stack (and costs an idle
    # consumer 1000/wait empty fetches a second).
    kafka_linger_ms: int = Field(default=0, ge=0)
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=1)

    jwt_issuer: str = "paygate"
    jwt_audience: str = "paygate-api"
    jwks_url: str = DEFAULT_SERVICE_URLS["user"] + "/.well-known/jwks.json"
    jwks_cache_seconds: int = 300
    service_token_secret: SecretStr = SecretStr(DEFAULT_SERVICE_TOKEN_SECRET)
    service_token_ttl_seconds: int = 60

    service_urls: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SERVICE_URLS))
    paygate_service_urls: str = ""  # JSON map from the launcher; merged into service_urls
    paygate_state_dir: str = ".paygate"

    @model_validator(mode="after")
    def _derive_and_refuse_defaults(self) -> ServiceSettings:
        if not self.db_schema:
            self.db_schema = self.default_schema
        if not self.port and self.registry_name:
            self.port = spec_for(self.registry_name).port
        if not self.kafka_client_id:
            self.kafka_client_id = self.service_name
        if self.paygate_service_urls:
            self.service_urls = {**self.service_urls, **json.loads(self.paygate_service_urls)}
        # a partial map overrides those services; the rest keep their registry address
        self.service_urls = {**DEFAULT_SERVICE_URLS, **self.service_urls}
        if self.environment == "production":
            offenders = [
                name
                for name, value in self
                if isinstance(value, SecretStr) and DEV_SECRET_MARKER in value.get_secret_value()
            ]
            offenders += [
                name
                for name, value in self
                if isinstance(value, SecretStr) and not value.get_secret_value()
            ]
            if offenders:
                raise ValueError(
                    "refusing to start in production with development secrets: "
                    + ", ".join(sorted(set(offenders)))
                )
        return self

    def service_url(self, name: str) -> str:
        return self.service_urls[name].rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _UnprefixedEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


def field_names(settings_cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """The settings' fields, for documentation generators."""
    return dict(settings_cls.model_fields)


def redacted(settings: BaseSettings) -> dict[str, Any]:
    """Settings as a dict safe to log: secrets stay `**********`."""
    return {name: (str(v) if isinstance(v, SecretStr) else v) for name, v in settings}
