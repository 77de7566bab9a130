"""uvicorn's httptools protocol with each response's writes coalesced into one `send()`.

ASGI hands a response over as `http.response.start` + `http.response.body`, and uvicorn writes
each to the socket at once: two `send()` syscalls per response. On loopback a `send()` also runs
the receiver's TCP processing in the sender's context, so that second syscall was ~25% of the
gateway's CPU in the profile (bench/gateway/PROFILE.md). Here every write a request/response
cycle makes is held until its next write or the end of the event-loop step: the head and a
body sent right after it leave together. Run with `--http gateway.server:GatewayHttpProtocol`
(what `run()` and the benchmark do); the app is the same ASGI app, so any ASGI server still
works, just with one more syscall per response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class GatewayHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose request/response cycles write through `_CoalescingTransport`."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:
            # The cycle's task has been created but has not run yet: nothing was written.
            cycle.transport = _CoalescingTransport(self.transport, self.loop)  # type: ignore[assignment]
