"""Internal answers as types: a stand-in that drifts from the serving model is refused, loudly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from paygate_common.errors import UpstreamError
from paygate_common.http import ServiceClient, UpstreamStatusError
from paygate_common.internal.config import CONFIG_PATH, ConfigRead
from paygate_common.internal.users import (
    CONTACT_PATH,
    ApiKeyResolved,
    ApiKeyResolveRequest,
    ContactRead,
)
from paygate_common.settings import ServiceSettings
from paygate_devstack.asgi import serve_asgi

SECRET = "internal-models-test-secret-that-is-long-enough-0123"


class NotificationSettings(ServiceSettings):
    service_name: ClassVar[str] = "notification-service"


def a_contact(**change: Any) -> dict[str, Any]:
    good = ContactRead(
        user_id=uuid.uuid4(), email="ada@example.com", full_name="Ada", phone="+15550100"
    )
    return {**good.model_dump(mode="json"), **change}


@pytest.mark.parametrize(
    "drift",
    [
        {"email": None},  # a field the callers need went missing
        {"user_id": "not-a-uuid"},  # a type changed
        {"full_name": 42},
    ],
)
def test_a_stand_in_answer_that_drifts_from_the_model_is_refused(drift: dict[str, Any]) -> None:
    body = {k: v for k, v in a_contact(**drift).items() if v is not None}
    with pytest.raises(ValidationError):
        ContactRead.model_validate(body)


def test_a_newer_server_may_add_fields_but_a_request_may_not() -> None:
    # answers ignore what they do not know (user-service may grow), requests forbid it
    assert ContactRead.model_validate(a_contact(locale="en")).email == "ada@example.com"
    with pytest.raises(ValidationError):
        ApiKeyResolveRequest.model_validate({"key": "pgk_x", "scope": "all"})
    with pytest.raises(ValidationError):
        ApiKeyResolved.model_validate({"access_token": "t", "expires_in": 60})  # no owner


@pytest.fixture
async def user_service() -> AsyncIterator[tuple[dict[str, Any], str]]:
    """A user-service stand-in whose contact answer a test can bend out of shape."""
    answers: dict[str, Any] = {}
    app = FastAPI()

    @app.get(CONTACT_PATH)
    async def contact(user_id: uuid.UUID) -> JSONResponse:
        return JSONResponse(answers["contact"], status_code=answers.get("status", 200))

    @app.get(CONFIG_PATH)
    async def config(key: str) -> JSONResponse:
        return JSONResponse(answers["config"])

    async with serve_asgi(app) as url:
        yield answers, url


async def test_call_as_reads_the_model_and_turns_drift_into_a_502_problem(
    user_service: tuple[dict[str, Any], str],
) -> None:
    answers, url = user_service
    settings = NotificationSettings(service_token_secret=SECRET)
    client = ServiceClient(settings, target="user", base_url=url, retries=0)
    path = CONTACT_PATH.format(user_id=uuid.uuid4())
    try:
        answers["contact"] = a_contact()
        contact = await client.call_as(ContactRead, "GET", path)
        assert (contact.email, contact.phone) == ("ada@example.com", "+15550100")

        answers["contact"] = {k: v for k, v in a_contact().items() if k != "email"}
        with pytest.raises(UpstreamError) as drifted:
            await client.call_as(ContactRead, "GET", path)
        assert drifted.value.status_code == 502
        assert not isinstance(drifted.value, UpstreamStatusError)

        # an error status is the owner's answer, kept for the caller to relay or branch on
        answers.update(contact={"code": "user_not_found", "status": 404}, status=404)
        with pytest.raises(UpstreamStatusError) as refused:
            await client.call_as(ContactRead, "GET", path)
        assert refused.value.upstream_status == 404
    finally:
        await client.aclose()


async def test_config_answer_is_read_as_config_read(
    user_service: tuple[dict[str, Any], str],
) -> None:
    answers, url = user_service
    answers["config"] = ConfigRead(key="fees", version=2, value={"rules": []}).model_dump(
        mode="json"
    )
    client = ServiceClient(
        NotificationSettings(service_token_secret=SECRET), target="admin", base_url=url
    )
    try:
        read = await client.call_as(ConfigRead, "GET", CONFIG_PATH.format(key="fees"))
        assert (read.key, read.version, read.value) == ("fees", 2, {"rules": []})
        answers["config"] = {"key": "fees", "version": -1, "value": {}}  # not a version
        with pytest.raises(UpstreamError):
            await client.call_as(ConfigRead, "GET", CONFIG_PATH.format(key="fees"))
    finally:
        await client.aclose()
