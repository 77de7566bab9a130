"""A small pooled HTTP/1.1 client on asyncio protocols + httptools (the gateway proxy's).

Why not aiohttp here: its `ClientSession.request` builds a `ClientRequest`, a `ClientResponse`,
multidicts, a timeout context and a stream reader per call — ~30% of the gateway's CPU in the
profile (bench/gateway/PROFILE.md). The proxy needs much less: one keep-alive pool per upstream,
the request written with ONE `transport.write()` (head and body joined), the response parsed by
httptools into raw header pairs and body chunks, a deadline per request, and errors that say
whether the connection could not be made (`ConnectFailed`), went away (`Disconnected`), spoke
broken HTTP (`BrokenResponse`) or was too slow (`TimeoutError`) so the proxy can map them to
502/504 and retry only what is safe to retry.

Responses whose head and body arrive together (the common small JSON answer) complete with a
single wake-up of the waiting task; bigger ones are read chunk by chunk with `read_chunk()`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

# Stop reading from the upstream while this much response body waits for a slow client.
_READ_HIGH_WATER = 1024 * 1024
# A response announcing at most this Content-Length is handed over only once it is complete,
# so the proxy relays it as one body: servers often write head and body in separate segments,
# and waking the proxy for the head alone costs a loop turn and extra ASGI messages.
_WHOLE_BODY_MAX = 64 * 1024


class UpstreamError(Exception):
    """Base of the failures below; `timeout` errors are plain `TimeoutError`."""


class ConnectFailed(UpstreamError):
    """No connection could be made (refused, unreachable, connect timeout): nothing was sent."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Disconnected(UpstreamError):
    """The connection closed before a complete response arrived."""


class BrokenResponse(UpstreamError):
    """The upstream's bytes are not valid HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries at most one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.parser: httptools.HttpResponseParser | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.head_done = False
        self.whole = False  # small Content-Length: wake the reader only when it is all here
        self.done = False
        self.keep_alive = False
        self.is_head = False
        self.reading_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        # The current request's deadline, and ONE timer per connection that is re-armed lazily
        # instead of a timer created and cancelled per request (each is a libuv handle to open,
        # close and free).
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None

    # --- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes nobody asked for: the connection cannot be trusted
            self._close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BrokenResponse("the upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(BrokenResponse(f"invalid HTTP from the upstream: {exc}"))
            return
        if self.head_done:
            if self.done or not self.whole:
                self._wake()
            if self.buffered > _READ_HIGH_WATER and not self.reading_paused and self.transport:
                self.reading_paused = True
                self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        if self.parser is None or self.done:
            return
        if self.head_done and self._body_ends_at_eof():
            self.done = True
            self.keep_alive = False
            self._wake()
            return
        self._fail(Disconnected("the upstream closed the connection"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- parser callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            self.headers = []
            return
        self.status = status
        self.head_done = True
        for name, value in self.headers:
            if len(name) == 14 and name.lower() == b"content-length":
                value = value.strip()
                self.whole = value.isdigit() and int(value) <= _WHOLE_BODY_MAX
                break
        if self.is_head:  # no body follows a HEAD response, whatever Content-Length says
            self.keep_alive = self.parser.should_keep_alive()
            self.done = True
            self.parser = _DISCARD  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if not self.head_done or self.done:  # an interim response ended, or a HEAD's
            return
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True

    # --- helpers ----------------------------------------------------------------------------

    def _body_ends_at_eof(self) -> bool:
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"content-length" or (
                lname == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return False
        return True

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def on_timeout(self) -> None:
        self._fail(TimeoutError("the upstream did not answer in time"))

    def arm(self, deadline: float) -> None:
        """Time the request out at `deadline` (loop time) unless `disarm()` comes first."""
        self.deadline = deadline
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._deadline_reached)

    def disarm(self) -> None:
        self.deadline = None  # the timer stays armed and finds nothing to do when it fires

    def _deadline_reached(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.closed:
            return
        if deadline - self.loop.time() > 0.001:  # a later request on this connection
            self.timer = self.loop.call_at(deadline, self._deadline_reached)
            return
        self.on_timeout()

    def begin(self, is_head: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.waiter = self.loop.create_future()
        self.error = None
        self.status = 0
        self.headers = []
        self.chunks = []
        self.buffered = 0
        self.head_done = False
        self.whole = False
        self.done = False
        self.keep_alive = False
        self.is_head = is_head

    async def drain(self) -> None:
        if self.error is not None:
            raise self.error
        if self.write_paused:
            self.drain_waiter = self.loop.create_future()
            try:
                await self.drain_waiter
            finally:
                self.drain_waiter = None


class _Discard:
    """Stands in for the parser after a HEAD response: any later bytes are ignored."""

    def feed_data(self, data: bytes) -> None:
        return None


_DISCARD = _Discard()


class UpstreamResponse:
    """Status, raw header pairs and body; call `release()` (or read to the end) when done."""

    __slots__ = ("_conn", "_pool", "_timer", "headers", "status")

    def __init__(
        self, conn: _Connection, pool: UpstreamPool, timer: asyncio.TimerHandle | None
    ) -> None:
        self._conn = conn
        self._pool = pool
        self._timer = timer
        self.status = conn.status
        self.headers = conn.headers

    @property
    def complete(self) -> bool:
        """The whole body is already here (`body()` returns it without waiting)."""
        return self._conn.done

    def body(self) -> bytes:
        """The body when `complete`, without releasing the connection yet."""
        chunks = self._conn.chunks
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def take_body(self) -> bytes:
        """The body when `complete`; releases the connection."""
        chunks = self._conn.chunks
        self.release()
        if not chunks:
            return b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_chunk(self) -> bytes:
        """The next piece of the body; b"" at its end (and the connection is released)."""
        conn = self._conn
        while True:
            if conn.chunks:
                chunks = conn.chunks
                conn.chunks = []
                conn.buffered = 0
                if conn.reading_paused and conn.transport is not None:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if conn.done:
                self.release()
                return b""
            if conn.error is not None:
                self.release()
                raise conn.error
            conn.waiter = conn.loop.create_future()
            try:
                await conn.waiter
            except BaseException:
                self.release()
                raise

    def release(self) -> None:
        """Give the connection back to the pool (or close it when it cannot be reused)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        if conn.parser is None:  # already released
            return
        conn.disarm()
        conn.parser = None
        conn.waiter = None
        if conn.done and conn.keep_alive and not conn.closed:
            self._pool._release(conn)
        else:
            conn._close()
            self._pool._discard(conn)


class UpstreamPool:
    """Keep-alive connections to one upstream (`http://host:port` or `https://...`)."""

    def __init__(
        self,
        base_url: str,
        *,
        limit: int = 256,
        keepalive_seconds: float = 30.0,
        connect_timeout: float = 2.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported upstream URL {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.base_path = parts.path.rstrip("/").encode("latin-1")
        self.host_line = b"host: " + (parts.netloc.rsplit("@", 1)[-1]).encode("latin-1") + b"\r\n"
        self.limit = max(1, limit)
        self.keepalive_seconds = keepalive_seconds
        self.connect_timeout = connect_timeout
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    # --- the request ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: bytes,
        header_block: bytes,
        body: bytes | AsyncIterator[bytes],
        *,
        total_seconds: float,
    ) -> UpstreamResponse:
        """Send `method target` with `header_block` (complete `name: value\\r\\n` lines, no
        Host / Content-Length / Transfer-Encoding) and wait for the response head; `total_seconds` bounds
        the whole exchange, body included, until the response is released.

        `body` as bytes goes out in the same write as the head; an async iterator is sent
        chunked. Raises `ConnectFailed`, `Disconnected`, `BrokenResponse` or `TimeoutError`.
        """
        loop = self.loop
        deadline = loop.time() + total_seconds
        conn = self._take_idle()
        if conn is None:
            conn = await self._connect(deadline)
        conn.arm(deadline)
        conn.begin(method == "HEAD")
        transport = conn.transport
        assert transport is not None
        head = b"%s %s%s HTTP/1.1\r\n%s%s" % (
            method.encode("ascii"),
            self.base_path,
            target,
            self.host_line,
            header_block,
        )
        response = UpstreamResponse(conn, self, None)
        try:
            if isinstance(body, bytes):
                if body or method not in _NO_BODY_METHODS:
                    transport.write(b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body))
                else:
                    transport.write(head + b"\r\n")
            else:
                transport.write(head + b"transfer-encoding: chunked\r\n\r\n")
                async for chunk in body:
                    if conn.error is not None:
                        raise conn.error
                    if chunk:
                        transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        await conn.drain()
                transport.write(b"0\r\n\r\n")
            if conn.error is not None:
                raise conn.error
            waiter = conn.waiter
            assert waiter is not None
            await waiter  # no suspension when the answer already came during a streamed body
        except BaseException:
            response.release()
            raise
        response.status = conn.status
        response.headers = conn.headers
        return response

    # --- the pool ---------------------------------------------------------------------------

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        expired_before = self.loop.time() - self.keepalive_seconds
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < expired_before:
                conn._close()
                self._open.discard(conn)
                continue
            return conn
        return None

    async def _connect(self, deadline: float) -> _Connection:
        if self._closed:
            raise ConnectFailed("the upstream pool is closed")
        while len(self._open) >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - self.loop.time()))
            finally:
                if not waiter.done():
                    waiter.cancel()
                with _suppress_value_error():
                    self._waiters.remove(waiter)
            conn = self._take_idle()
            if conn is not None:
                return conn
        conn = _Connection(self)
        self._open.add(conn)
        try:
            async with asyncio.timeout(min(self.connect_timeout, deadline - self.loop.time())):
                await self.loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError as exc:
            self._discard(conn)
            raise ConnectFailed(
                f"connecting to {self.host}:{self.port} timed out", timed_out=True
            ) from exc
        except OSError as exc:
            self._discard(conn)
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            self._discard(conn)
            conn._close()
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            conn._close()
            self._discard(conn)
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        self._wake_one()

    def _discard(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._wake_one()

    def _lost(self, conn: _Connection) -> None:
        # Closed while idle (the upstream's keep-alive timeout): it leaves the idle list lazily.
        self._discard(conn)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._open.clear()
        self._idle.clear()


_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class _suppress_value_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ValueError
