"""A minimal RESP2 client for the rate limiter's sync: one connection, pipelined commands whose
replies are single lines (integers, `+OK`, `+PONG`, errors).

Why not redis-py here: the limiter sends one pipeline every 5 ms whatever the load, and
redis-py's pipeline object, command packing, retry wrapper and stream reader were ~4% of the
gateway's CPU in the profile (bench/gateway/PROFILE.md) for what is one `write()` and a few
`:<n>\\r\\n` lines back. URLs are parsed by redis-py (`redis://`, `rediss://`, `unix://`, user,
password, db), so the settings mean exactly what they mean elsewhere in paygate.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url


class RespError(Exception):
    """Redis answered a command with an error reply."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.expected = 0
        self.waiter: asyncio.Future[list[bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done() or self.buffer.count(b"\r\n") < self.expected:
            return
        lines = bytes(self.buffer).split(b"\r\n", self.expected)
        self.buffer = bytearray(lines.pop())
        self.waiter = None
        waiter.set_result(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("Redis closed the connection"))


def _expire(waiter: asyncio.Future[list[bytes]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("Redis did not answer in time"))


def _command(*args: bytes) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class RespClient:
    """`await execute([(b"INCRBY", key, b"3"), ...])` → the raw reply lines, in order.

    Any failure (refused, timeout, closed, an error reply) closes the connection; the next call
    reconnects. Calls are serialised, so replies can never be matched to the wrong caller.
    """

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        options: dict[str, Any] = dict(parse_url(url))
        self._path: str | None = options.get("path")
        self._host: str = options.get("host", "127.0.0.1")
        self._port: int = int(options.get("port", 6379))
        self._ssl = (
            ssl.create_default_context()
            if options.get("connection_class") is SSLConnection
            else None
        )
        if options.get("connection_class") not in (None, SSLConnection, UnixDomainSocketConnection):
            raise ValueError(f"unsupported Redis URL {url!r}")
        hello: list[bytes] = []
        password = options.get("password")
        if password is not None:
            username = options.get("username")
            auth = (b"AUTH", username.encode(), password.encode()) if username else None
            hello.append(_command(*(auth or (b"AUTH", password.encode()))))
        if int(options.get("db", 0)):
            hello.append(_command(b"SELECT", str(int(options["db"])).encode()))
        self._hello = hello
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._busy: asyncio.Future[None] | None = None
        # Cached: in Python 3.11 every asyncio.get_running_loop() (also inside asyncio.timeout
        # and asyncio.Lock) is a getpid() syscall, and this runs every 5 ms.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        if self._path is not None:
            connecting = loop.create_unix_connection(_Protocol, self._path)
        else:
            connecting = loop.create_connection(
                _Protocol,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        _, protocol = await asyncio.wait_for(connecting, self._timeout)
        if self._hello:
            await self._roundtrip(loop, protocol, b"".join(self._hello), len(self._hello))
        return protocol

    async def _roundtrip(
        self, loop: asyncio.AbstractEventLoop, protocol: _Protocol, payload: bytes, replies: int
    ) -> list[bytes]:
        assert protocol.transport is not None
        waiter: asyncio.Future[list[bytes]] = loop.create_future()
        protocol.waiter = waiter
        protocol.expected = replies
        timer = loop.call_later(self._timeout, _expire, waiter)
        protocol.transport.write(payload)
        try:
            lines = await waiter
        finally:
            timer.cancel()
        for line in lines:
            if line[:1] == b"-":
                raise RespError(line[1:].decode("utf-8", "replace"))
        return lines

    async def execute(self, commands: list[tuple[bytes, ...]]) -> list[bytes]:
        payload = b"".join(_command(*c) for c in commands)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        while self._busy is not None:  # one exchange at a time on the connection
            await asyncio.shield(self._busy)
        busy = self._busy = loop.create_future()
        try:
            protocol = self._protocol
            if protocol is None or protocol.lost:
                protocol = self._protocol = await self._connect(loop)
            return await self._roundtrip(loop, protocol, payload, len(commands))
        except BaseException:
            self._drop()
            raise
        finally:
            self._busy = None
            busy.set_result(None)

    def _drop(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
