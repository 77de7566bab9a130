"""The rate limiter's raw RESP client against a real Redis: pipelined replies, db, errors, reconnects."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.resp import RespClient, RespError


async def test_pipelined_commands_land_in_the_selected_db(redis_server: Any) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/5"
    client = RespClient(url)
    try:
        replies = await client.execute(
            [(b"INCRBY", b"resp:test", b"3"), (b"EXPIRE", b"resp:test", b"60"), (b"PING",)]
        )
        again = await client.execute([(b"INCRBY", b"resp:test", b"4")])
    finally:
        await client.aclose()
    assert replies == [b":3", b":1", b"+PONG"]
    assert again == [b":7"]
    check = aioredis.from_url(url)
    try:
        assert await check.get("resp:test") == b"7"
        await check.delete("resp:test")
    finally:
        await check.aclose()


async def test_error_reply_raises_and_the_next_call_reconnects(redis_server: Any) -> None:
    client = RespClient(redis_server.url)
    try:
        with pytest.raises(RespError):
            await client.execute([(b"NOSUCHCOMMAND",)])
        assert await client.execute([(b"PING",)]) == [b"+PONG"]
    finally:
        await client.aclose()


async def test_unreachable_redis_is_an_oserror() -> None:
    client = RespClient("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(OSError):
        await client.execute([(b"PING",)])
    await client.aclose()
