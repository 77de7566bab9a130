"""Settings: prefixed variables win, unprefixed ones serve the whole suite, production refuses dev secrets."""

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from paygate_common.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_SERVICE_")
    service_name: ClassVar[str] = "order-service"
    default_schema: ClassVar[str] = "orders"


def test_prefixed_variable_wins_over_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://shared:1/0")
    monkeypatch.setenv("ORDER_SERVICE_REDIS_URL", "redis://mine:2/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@h/db")
    s = OrderSettings()
    assert s.redis_url == "redis://mine:2/0"
    assert s.database_url == "postgresql+asyncpg://u@h/db"


def test_schema_and_client_id_default_to_the_service() -> None:
    s = OrderSettings()
    assert s.db_schema == "orders"
    assert s.kafka_client_id == "order-service"


def test_launcher_service_urls_are_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYGATE_SERVICE_URLS", '{"user": "http://10.0.0.5:9001/"}')
    s = OrderSettings()
    assert s.service_url("user") == "http://10.0.0.5:9001"
    assert s.service_url("payment") == "http://127.0.0.1:8002"


def test_production_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="service_token_secret"):
        OrderSettings()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SERVICE_TOKEN_SECRET", "a-real-secret-from-the-vault-0123456789abcdef")
    s = OrderSettings()
    assert isinstance(s.service_token_secret, SecretStr)
    assert "vault" not in repr(s)
