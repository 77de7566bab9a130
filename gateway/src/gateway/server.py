"""uvicorn's httptools protocol with `/api/*` served straight from the connection.

Run with `--http gateway.server:GatewayHttpProtocol` (what `run()`, `make run` and the benchmark
do). Two things differ from uvicorn's `HttpToolsProtocol`:

1. **Proxied requests skip ASGI.** For `/api/*` requests with no body or a `Content-Length` body
   of at most `FAST_BODY_MAX` bytes, the protocol builds no scope dict, no
   `RequestResponseCycle`, no `asyncio.Event` and no ASGI messages: a `_FastCycle` hands the
   parsed request to `Proxy.handle` (the same code the ASGI path runs, see `gateway.proxy`) and
   writes the answer — status line, uvicorn's `date`/`server` headers, the proxy's headers and
   the body — with one `transport.write()`. Everything else (the gateway's own endpoints,
   chunked or large uploads, `Expect: 100-continue`, upgrades, CORS-wrapped apps,
   `--limit-concurrency`) goes to the ASGI app as before. Pipelined requests keep their order:
   a `_FastCycle` queues in uvicorn's own pipeline like any cycle.
2. **One write per ASGI response**: every write an ASGI request/response cycle makes is held
   until its next write or the end of the event-loop step, so a head and the body sent right
   after it leave in one `send()` (on loopback each `send()` also runs the receiver's TCP
   processing in the sender's context; the second one was ~25% of the CPU in the profile).

Any ASGI server still runs `gateway.main:create_app`; it only costs more per request.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("uvicorn.error")

# Bigger (or chunked) request bodies go through ASGI, which streams them to the upstream as
# they arrive instead of buffering them here.
FAST_BODY_MAX = 64 * 1024
_NO_BODY_STATUSES = (204, 304)
_PROBLEM_400 = (
    b'{"type":"https://paygate.dev/problems/bad_request","title":"Bad Request","status":400,'
    b'"code":"bad_request","detail":"The request could not be parsed as one unambiguous HTTP '
    b'request"}'
)
_SERVER_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error"
)


class _CoalescingTransport:
    """Holds a write until the next one (sent joined with it), the end of the loop step or close.

    Only the request/response cycle sees this object; uvicorn's connection-level code keeps the
    real transport. Everything but `write` and `close` goes straight to the real transport.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            # Typically the response head: wait for the body that usually follows at once.
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held + data)

    def flush(self) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        if not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _DefaultHeaders:
    """uvicorn's `date` + `server` lines, joined once per change (the server swaps the list
    once a second) instead of once per response."""

    __slots__ = ("_block", "_source")

    def __init__(self) -> None:
        self._source: object = None
        self._block = b""

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self._source:
            self._block = b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)
            self._source = headers
        return self._block


_DEFAULT_HEADERS = _DefaultHeaders()


class _FastCycle:
    """One `/api/*` request served without ASGI; also `gateway.proxy.Exchange` for `Proxy`.

    It stands in for uvicorn's `RequestResponseCycle` towards the protocol (the attributes the
    protocol touches: `body`, `more_body`, `message_event`, `response_complete`,
    `disconnected`, `keep_alive`, `run_asgi`), so body callbacks, pipelining, disconnects and
    graceful shutdown work unchanged.
    """

    __slots__ = (
        "_waiter",
        "body",
        "chunked",
        "client_host",
        "disconnected",
        "headers",
        "keep_alive",
        "method",
        "more_body",
        "on_response",
        "path",
        "protocol",
        "query",
        "raw_path",
        "response_complete",
        "response_started",
        "scheme",
    )

    def __init__(
        self,
        protocol: GatewayHttpProtocol,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.keep_alive = keep_alive
        client = protocol.client
        self.client_host = client[0] if client else None
        self.scheme = protocol.scheme or "http"
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.on_response = protocol.on_response_complete
        self._waiter: asyncio.Future[None] | None = None

    # --- what the protocol calls ------------------------------------------------------------

    @property
    def message_event(self) -> _FastCycle:
        return self  # the protocol calls `cycle.message_event.set()` on body / end / disconnect

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run_asgi(self, app: Any) -> None:
        """Named for uvicorn's pipeline, which starts queued cycles this way; `app` is unused."""
        protocol = self.protocol
        try:
            await protocol.fast_proxy.handle(
                self,
                self.method,
                self.path,
                self.raw_path,
                self.query,
                self.headers,
                self.client_host,
                self.scheme,
            )
        except BaseException as exc:
            log.error("Exception in the gateway's proxy", exc_info=exc)
            transport = protocol.transport
            if not self.response_started and not self.disconnected:
                self.response_started = self.response_complete = True
                if not transport.is_closing():
                    transport.write(_SERVER_ERROR)
                    transport.close()
            else:
                transport.close()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if not self.response_complete and not self.disconnected:
                protocol.transport.close()
        finally:
            self.on_response = _nothing

    # --- gateway.proxy.Exchange ------------------------------------------------------------

    async def read(self) -> tuple[bytes, bool] | None:
        # Only bodies of at most FAST_BODY_MAX bytes come here: hand over the whole body.
        while self.more_body and not self.disconnected:
            self.protocol.flow.resume_reading()
            self._waiter = self.protocol.loop.create_future()
            await self._waiter
            self._waiter = None
        if self.disconnected:
            return None
        body = bytes(self.body)
        self.body = bytearray()
        return body, False

    def _head(self, status: int, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
        protocol = self.protocol
        out = [STATUS_LINE[status], _DEFAULT_HEADERS.block(protocol.server_state.default_headers)]
        has_length = False
        for name, value in headers:
            if name == b"content-length":
                has_length = True
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
            out += (name, b": ", value, b"\r\n")
        if self.scheme == "https":
            hsts = protocol.fast_proxy.hsts
            if hsts:
                out += (b"strict-transport-security: ", hsts, b"\r\n")
        if not self.keep_alive:
            out.append(b"connection: close\r\n")
        if not has_length and self.method != "HEAD" and status not in _NO_BODY_STATUSES:
            self.chunked = True
            out.append(b"transfer-encoding: chunked\r\n")
        out.append(b"\r\n")
        return out

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        out = self._head(status, headers)
        if self.method != "HEAD":
            if self.chunked:
                if body:
                    out += (b"%x\r\n" % len(body), body, b"\r\n")
                out.append(b"0\r\n\r\n")
            else:
                out.append(body)
        protocol.transport.write(b"".join(out))
        self._complete()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        protocol.transport.write(b"".join(self._head(status, headers)))

    async def write(self, chunk: bytes) -> None:
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected or self.method == "HEAD" or not chunk:
            return
        if self.chunked:
            protocol.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            protocol.transport.write(chunk)

    async def end(self) -> None:
        if self.disconnected or not self.response_started:
            return
        if self.chunked and self.method != "HEAD":
            self.protocol.transport.write(b"0\r\n\r\n")
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        if not self.keep_alive:
            self.protocol.transport.close()
        self.on_response()


def _nothing() -> None:
    return None


class GatewayHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `/api/*` served by `_FastCycle` and one write per ASGI answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `Gateway.fast_proxy`; absent when the app is wrapped (CORS, uvicorn's trace logging):
        # then every request goes through ASGI so the wrapper sees it.
        self.fast_proxy: Any = getattr(self.app, "fast_proxy", None)
        self._body_length = 0
        self._chunked_request = False
        self._idle_since: float | None = None

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request (a repeated Content-Length, a smuggling attempt...):
        problem+json like every other refusal, instead of uvicorn's plain text."""
        content = [STATUS_LINE[400], _DEFAULT_HEADERS.block(self.server_state.default_headers)]
        content += (
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(_PROBLEM_400),
            b"connection: close\r\n\r\n",
            _PROBLEM_400,
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    # --- keep-alive timeout: one lazily re-armed timer per connection ------------------------
    # uvicorn creates a timer after every response and cancels it on the next request's bytes;
    # each is a libuv handle opened, closed and freed, twice per request with the upstream's.

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy; the armed timer (if any) will find nothing to do

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # a request is in progress: its response re-arms the timer
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0.001:
            self.timeout_keep_alive_task = self.loop.call_later(
                left, self.timeout_keep_alive_handler
            )
            return
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = None  # type: ignore[assignment]  # built only for the ASGI path
        self._body_length = 0
        self._chunked_request = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            value_s = value.strip()
            self._body_length = int(value_s) if value_s.isdigit() else FAST_BODY_MAX + 1
        elif name == b"transfer-encoding":
            self._chunked_request = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        if (
            self.fast_proxy is not None
            and not self.expect_100_continue
            and not self._chunked_request
            and self._body_length <= FAST_BODY_MAX
            and self.limit_concurrency is None
            and not parser.should_upgrade()
        ):
            parsed_url = httptools.parse_url(self.url)
            raw_path = parsed_url.path
            if raw_path.startswith(b"/api/") and not self.root_path:
                path = raw_path.decode("ascii")
                if "%" in path:
                    path = urllib.parse.unquote(path)
                keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
                cycle = _FastCycle(
                    self,
                    parser.get_method().decode("ascii"),
                    path,
                    raw_path,
                    parsed_url.query or b"",
                    self.headers,
                    keep_alive,
                )
                existing = self.cycle
                self.cycle = cycle  # type: ignore[assignment]
                if existing is None or existing.response_complete:
                    self._start_asgi_task(cycle, None)  # type: ignore[arg-type]
                else:  # pipelined behind an unfinished answer: uvicorn's queue keeps the order
                    self.flow.pause_reading()
                    self.pipeline.appendleft((cycle, None))  # type: ignore[arg-type]
                return
        self._asgi_headers_complete()

    def _asgi_headers_complete(self) -> None:
        # The scope uvicorn's `on_message_begin` would have built.
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:
            # The cycle's task has been created but has not run yet: nothing was written.
            cycle.transport = _CoalescingTransport(self.transport, self.loop)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if type(cycle) is _FastCycle:
            if cycle.response_complete:
                return
            cycle.body += body
            if len(cycle.body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            cycle.set()
            return
        super().on_body(body)
