"""What the provider stand-ins share: a JSON state file and callbacks retried in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx


class StateFile:
    """Keeps named dict attributes of `owner` in `<directory>/state.json` (none: memory only)."""

    def __init__(self, directory: Path | None, owner: object, names: Sequence[str]) -> None:
        self.path = Path(directory) / "state.json" if directory else None
        self.owner = owner
        self.names = tuple(names)

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            data = json.loads(self.path.read_text())
            for name in self.names:
                getattr(self.owner, name).update(data.get(name, {}))

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({name: getattr(self.owner, name) for name in self.names}))
        tmp.replace(self.path)


class Notifier:
    """Sends a provider's callbacks (webhooks, IPNs) in the background until one is answered
    2xx or the delays run out; every attempt is recorded in `deliveries`."""

    def __init__(self, delays: Sequence[float], http: httpx.AsyncClient | None = None) -> None:
        self.delays = tuple(delays)
        self.deliveries: list[dict[str, Any]] = []
        self._http = http
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self, url: str, record: Mapping[str, Any], request: Callable[[], Mapping[str, Any]]
    ) -> None:
        """POST to `url`; `request()` gives httpx.post keyword arguments, anew for each attempt
        (PayPal signs every attempt with a fresh transmission id and time)."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, record, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, url: str, record: Mapping[str, Any], request: Callable[[], Mapping[str, Any]]
    ) -> None:
        client = self._http or httpx.AsyncClient(timeout=10)
        try:
            for attempt, delay in enumerate(self.delays, start=1):
                await asyncio.sleep(delay)
                entry: dict[str, Any] = {**record, "url": url, "attempt": attempt}
                try:
                    response = await client.post(url, **request())
                    entry["status_code"] = response.status_code
                except httpx.HTTPError as exc:
                    entry["error"] = type(exc).__name__
                self.deliveries.append(entry)
                if 200 <= entry.get("status_code", 0) < 300:
                    return
        finally:
            if self._http is None:
                await client.aclose()

    def cancel(self) -> None:
        """Stop retrying callbacks nobody will receive any more (shutdown)."""
        for task in list(self._tasks):
            task.cancel()

    async def drain(self) -> None:
        """Wait for the callbacks still being delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
