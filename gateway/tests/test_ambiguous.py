"""Ambiguous requests (a header given twice, a body declared in another charset) never get past."""

from __future__ import annotations

import asyncio
import json

import pytest
from gateway_support import GatewayFactory, Upstreams, UpstreamState


async def raw_request(
    base_url: str, request_line: str, headers: str, body: str = "{}"
) -> tuple[int, bytes]:
    """Header lines exactly as written (an HTTP client would merge or refuse repeated ones)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"{request_line} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n{body}".encode()
    )
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(data.split(b" ", 2)[1]), data


def _problem(data: bytes) -> dict[str, object]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    parsed: dict[str, object] = json.loads(body)
    return parsed


@pytest.mark.parametrize(
    "header",
    ["Authorization", "Idempotency-Key", "Content-Type", "Host"],
)
async def test_a_single_valued_header_given_twice_is_refused_before_any_service(
    gateway: str, upstreams: Upstreams, state: UpstreamState, header: str
) -> None:
    token = upstreams.token()
    values = {
        "Authorization": (f"Bearer {token}", f"Bearer {upstreams.token()}"),
        "Idempotency-Key": ("key-one", "key-two"),
        "Content-Type": ("application/json", "text/plain"),
        "Host": ("shop.example", "evil.example"),
    }[header]
    others = "" if header == "Authorization" else f"Authorization: Bearer {token}\r\n"
    if header == "Host":  # raw_request writes the first Host itself
        extra = f"Host: {values[1]}\r\n"
    else:
        extra = f"{header}: {values[0]}\r\n{header}: {values[1]}\r\n"
    status, data = await raw_request(
        gateway,
        "POST /api/v1/orders",
        others + extra + "Content-Length: 2\r\n",
    )
    assert status == 400
    problem = _problem(data)
    assert problem["code"] == "duplicate_header"
    assert header in str(problem["detail"])
    assert state.hits["order /orders"] == 0


async def test_two_content_lengths_are_refused(
    make_gateway: GatewayFactory, upstreams: Upstreams, state: UpstreamState
) -> None:
    async with make_gateway() as url:
        status, data = await raw_request(
            url,
            "POST /api/v1/orders",
            f"Authorization: Bearer {upstreams.token()}\r\n"
            "Content-Length: 2\r\nContent-Length: 2\r\n",
        )
    # The HTTP parser refuses it before the gateway sees a request; on the gateway's own
    # protocol that refusal is problem+json too (uvicorn's stock protocol answers plain text).
    assert status == 400
    if make_gateway.protocol == "fast":  # type: ignore[attr-defined]
        assert _problem(data)["status"] == 400
    assert state.hits["order /orders"] == 0


async def test_exactly_one_of_each_single_valued_header_is_forwarded(
    gateway: str, upstreams: Upstreams, state: UpstreamState
) -> None:
    status, data = await raw_request(
        gateway,
        "POST /api/v1/orders",
        f"Authorization: Bearer {upstreams.token()}\r\nIdempotency-Key: k-1\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n",
    )
    assert status == 200
    seen = json.loads(data.partition(b"\r\n\r\n")[2])["header_list"]
    for name in ("authorization", "idempotency-key", "content-type", "content-length", "host"):
        assert seen.count(name) == 1, name


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-16",
        'application/json; charset="UTF-16LE"',
        "application/json;charset=iso-8859-1",
    ],
)
async def test_a_body_declared_in_another_charset_is_refused_with_415(
    gateway: str, upstreams: Upstreams, state: UpstreamState, content_type: str
) -> None:
    status, data = await raw_request(
        gateway,
        "POST /api/v1/orders",
        f"Authorization: Bearer {upstreams.token()}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 13\r\n",
        '{"amount": 1}',
    )
    assert status == 415
    assert _problem(data)["code"] == "unsupported_media_type"
    assert state.hits["order /orders"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "text/plain;CHARSET=UTF8"],
)
async def test_utf8_or_undeclared_bodies_pass(
    gateway: str, upstreams: Upstreams, state: UpstreamState, content_type: str
) -> None:
    status, _ = await raw_request(
        gateway,
        "POST /api/v1/orders",
        f"Authorization: Bearer {upstreams.token()}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 13\r\n",
        '{"amount": 1}',
    )
    assert status == 200
    assert state.hits["order /orders"] == 1
