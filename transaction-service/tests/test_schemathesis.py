"""Property-based run over transaction-service's own OpenAPI: no input may produce a server error.

The app runs in process (its lifespan inside Starlette's test client) on a fresh database with
real PostgreSQL, Redis and Kafka; generated requests carry a valid user or service token so
they get past authentication into the domain code.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from paygate_common.auth import JWKSCache, SigningKey, issue_access_token, issue_service_token
from paygate_common.migrations import upgrade_head
from paygate_common.settings import ServiceSettings
from transaction_service.main import create_app
from transaction_service.settings import Settings

pytestmark = pytest.mark.slow

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


class _OrderService(ServiceSettings):
    service_name: ClassVar[str] = "order-service"


def test_no_input_makes_transaction_service_fail(
    postgres: Any, redis_server: Any, ledger_kafka: Any
) -> None:
    url = postgres.create_database()
    upgrade_head(ALEMBIC_INI, database_url=url, db_schema="transactions")
    app_settings = Settings(
        database_url=url,
        redis_url=redis_server.url,
        kafka_bootstrap_servers=ledger_kafka.bootstrap,
        environment="test",
        log_json=False,
    )
    app = create_app(app_settings)
    key = SigningKey.generate()
    app.state.jwks = JWKSCache.from_signing_keys([key])
    token, _ = issue_access_token(
        key,
        user_id=uuid.uuid4(),
        role="admin",
        email=None,
        issuer=app_settings.jwt_issuer,
        audience=app_settings.jwt_audience,
        ttl_seconds=3600,
    )
    caller = _OrderService(service_token_secret=app_settings.service_token_secret)
    headers = {
        "user": {"Authorization": f"Bearer {token}"},
        "service": {
            "Authorization": "Bearer " + issue_service_token(caller, audience_service="transaction")
        },
    }
    statuses: list[int] = []
    with TestClient(app) as client:
        api = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        operations = [result.ok() for result in api.get_all_operations()]
        assert len(operations) >= 6

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def no_server_error(case: Any) -> None:
                kind = "service" if case.path.startswith("/internal/") else "user"
                extra = {} if case.headers and "Authorization" in case.headers else headers[kind]
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=extra)
                kwargs.pop("timeout", None)
                kwargs.pop("verify", None)
                kwargs.pop("allow_redirects", None)
                if "data" in kwargs:
                    kwargs["content"] = kwargs.pop("data")
                response = client.request(**kwargs)
                assert response.status_code < 500, (case.method, case.formatted_path, response.text)
                statuses.append(response.status_code)

            no_server_error()

    assert len(statuses) >= 5 * len(operations)
    assert any(200 <= s < 300 for s in statuses)
    assert any(400 <= s < 500 for s in statuses)
