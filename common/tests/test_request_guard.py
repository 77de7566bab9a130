"""Every service refuses what two parsers could read differently: repeated headers, non-UTF-8."""

from typing import ClassVar

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from paygate_common.app import create_service_app
from paygate_common.request_guard import declared_charset
from paygate_common.settings import ServiceSettings


class GuardSettings(ServiceSettings):
    service_name: ClassVar[str] = "guard-service"


class Note(BaseModel):
    text: str


router = APIRouter()


@router.post("/notes")
async def create_note(note: Note) -> dict[str, str]:
    return {"text": note.text}


def client() -> httpx.AsyncClient:
    app = create_service_app(
        GuardSettings(log_json=False),
        title="Guard",
        routers=[router],
        use_database=False,
        use_redis=False,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("charset", ["utf-16", "UTF-16LE", '"latin-1"', "iso-8859-1"])
async def test_a_body_declared_in_another_charset_is_refused(charset: str) -> None:
    async with client() as c:
        response = await c.post(
            "/notes",
            content='{"text": "Zoë"}'.encode(),
            headers={"Content-Type": f"application/json; charset={charset}"},
        )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=UTF-8"])
async def test_utf8_bodies_are_read_as_utf8(content_type: str) -> None:
    async with client() as c:
        response = await c.post(
            "/notes", content='{"text": "Zoë"}'.encode(), headers={"Content-Type": content_type}
        )
    assert response.status_code == 200
    assert response.json() == {"text": "Zoë"}


@pytest.mark.parametrize("name", ["Authorization", "Idempotency-Key", "Content-Type"])
async def test_a_repeated_single_valued_header_is_refused(name: str) -> None:
    headers = [("Content-Type", "application/json"), (name, "a"), (name, "b")]
    if name == "Content-Type":
        headers = headers[1:]
    async with client() as c:
        response = await c.post("/notes", content=b'{"text": "x"}', headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "duplicate_header"
    assert name in response.json()["detail"]


def test_charset_parameter_is_parsed_like_rfc_9110() -> None:
    assert declared_charset(b"application/json") is None
    assert declared_charset(b'text/plain; format=flowed; Charset="UTF-16"') == "utf-16"
    assert declared_charset(b"application/json;charset=utf-8") == "utf-8"
