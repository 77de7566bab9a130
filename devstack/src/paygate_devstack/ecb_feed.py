"""ECB reference-rate feed stand-in (a fake): serves `eurofxref-daily.xml` in the ECB's own format.

The real feed is https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml: a gesmes
envelope with one `<Cube time="YYYY-MM-DD">` holding `<Cube currency="USD" rate="1.1172"/>`
per currency, euro-based, published on TARGET working days around 16:00 CET. This stand-in
serves the same document at the same path, so exchange-rate-service reaches it by
configuration only (`ECB_DAILY_URL`). Unless told otherwise it publishes a plausible set of
rates dated the latest weekday; tests and operators change it over HTTP or in process:

    POST /_config/publish  {"time": "2026-12-01", "rates": {"USD": "1.0547", ...}}
    POST /_config/outage   {"down": true}      # answers 503 until {"down": false}
    GET  /_config/state

    python -m paygate_devstack.ecb_feed --port 58440
"""

from __future__ import annotations

import argparse
import sys
import threading
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paygate_devstack.components import Component
from paygate_devstack.process import ManagedProcess, free_port

DAILY_PATH = "/stats/eurofxref/eurofxref-daily.xml"

# Euro reference rates in the ECB's currency order, shaped like its publication of late 2026.
DEFAULT_RATES: dict[str, str] = {
    "USD": "1.1172",
    "JPY": "175.68",
    "CZK": "24.353",
    "DKK": "7.4735",
    "GBP": "0.8338",
    "HUF": "366.33",
    "PLN": "4.4038",
    "RON": "5.3447",
    "SEK": "10.978",
    "CHF": "0.9194",
    "ISK": "136.00",
    "NOK": "10.312",
    "TRY": "55.8015",
    "AUD": "1.5904",
    "BRL": "6.0692",
    "CAD": "1.5606",
    "CNY": "7.4326",
    "HKD": "8.7652",
    "IDR": "20275.17",
    "ILS": "3.4950",
    "INR": "106.0840",
    "KRW": "1491.76",
    "MXN": "21.1237",
    "MYR": "4.5325",
    "NZD": "1.9823",
    "PHP": "71.143",
    "SGD": "1.4282",
    "THB": "37.683",
    "ZAR": "18.6455",
}


def latest_weekday(today: date | None = None) -> date:
    """The ECB publishes on weekdays: Saturday and Sunday show Friday's rates."""
    day = today or datetime.now(UTC).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def eurofxref_xml(published: date, rates: dict[str, str]) -> bytes:
    """The daily file exactly as the ECB lays it out."""
    cubes = "\n".join(
        f"\t\t\t<Cube currency={quoteattr(code)} rate={quoteattr(rate)}/>"
        for code, rate in rates.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
        'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">\n'
        "\t<gesmes:subject>Reference rates</gesmes:subject>\n"
        "\t<gesmes:Sender>\n"
        "\t\t<gesmes:name>European Central Bank</gesmes:name>\n"
        "\t</gesmes:Sender>\n"
        "\t<Cube>\n"
        f"\t\t<Cube time='{published.isoformat()}'>\n"
        f"{cubes}\n"
        "\t\t</Cube>\n"
        "\t</Cube>\n"
        "</gesmes:Envelope>\n"
    ).encode()


@dataclass
class FeedState:
    """What the stand-in publishes; `published` None means "the latest weekday, default rates"."""

    published: date | None = None
    rates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RATES))
    down: bool = False
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, published: date, rates: dict[str, str]) -> None:
        checked = {}
        for code, rate in rates.items():
            if len(code) != 3 or not code.isalpha():
                raise ValueError(f"bad currency {code!r}")
            try:
                if Decimal(rate) <= 0:
                    raise ValueError(f"bad rate {rate!r}")
            except InvalidOperation:
                raise ValueError(f"bad rate {rate!r}") from None
            checked[code.upper()] = str(rate)
        with self.lock:
            self.published, self.rates = published, checked

    def document(self) -> bytes:
        with self.lock:
            self.requests += 1
            return eurofxref_xml(self.published or latest_weekday(), dict(self.rates))


def build_app(state: FeedState) -> Starlette:
    async def daily(_: Request) -> Response:
        if state.down:
            return Response("Service Unavailable", status_code=503, media_type="text/plain")
        return Response(state.document(), media_type="text/xml")

    async def publish(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        try:
            state.publish(date.fromisoformat(body["time"]), dict(body["rates"]))
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({"time": body["time"], "currencies": len(state.rates)})

    async def outage(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        state.down = bool(body.get("down", True))
        return JSONResponse({"down": state.down})

    async def show(_: Request) -> Response:
        published = state.published or latest_weekday()
        return JSONResponse(
            {
                "time": published.isoformat(),
                "rates": state.rates,
                "down": state.down,
                "requests": state.requests,
            }
        )

    return Starlette(
        routes=[
            Route(DAILY_PATH, daily),
            Route("/_config/publish", publish, methods=["POST"]),
            Route("/_config/outage", outage, methods=["POST"]),
            Route("/_config/state", show),
        ]
    )


class _FeedAddress:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def daily_url(self) -> str:
        """What exchange-rate-service is configured with (`ECB_DAILY_URL`)."""
        return self.url + DAILY_PATH


class EcbFeed(_FeedAddress):
    """The stand-in on a thread of this process (tests): `publish()` and `down` act directly."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.state = FeedState()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            build_app(self.state),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="ecb-feed", daemon=True)
        self._thread.start()
        deadline = _time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or _time.monotonic() > deadline:
                raise RuntimeError(f"ECB feed stand-in did not start on port {self.port}")
            _time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def publish(self, published: date, rates: dict[str, str]) -> None:
        self.state.publish(published, rates)

    def set_down(self, down: bool = True) -> None:
        self.state.down = down


class EcbFeedProcess(_FeedAddress, Component):
    """The stand-in as a child process (for `make run`)."""

    name = "ecb"
    ready_timeout = 20.0

    def __init__(self, port: int, *, log_path: Path) -> None:
        self.port = port
        self.proc = ManagedProcess(
            "ecb",
            [sys.executable, "-m", "paygate_devstack.ecb_feed", "--port", str(port)],
            log_path=log_path,
        )

    def _ready(self) -> bool:
        return httpx.get(self.daily_url, timeout=2).status_code == 200


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.ecb_feed")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    uvicorn.run(build_app(FeedState()), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
