"""The ECB reference-rate XML (gesmes envelope, `Cube time` / `Cube currency rate`): fetch and parse.

The same parser reads the daily file (one `Cube time`) and the 90-day or full-history files
(many). Rates are read from their text straight into Decimal.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

import httpx

from paygate_common.money import SUPPORTED_CURRENCIES

log = logging.getLogger("exchange_rate_service.ecb")

EUROFXREF_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
GESMES_NS = "http://www.gesmes.org/xml/2002-08-01"
# The full-history XML is about 2 MB; anything far bigger is not an ECB file.
MAX_BODY_BYTES = 8 * 1024 * 1024


class FeedError(Exception):
    """The feed could not be fetched or is not the ECB format; the message is safe to store."""


@dataclass(frozen=True)
class PublishedRate:
    currency: str  # lowercase
    rate_date: date
    rate_per_eur: Decimal


def parse_eurofxref(body: bytes) -> list[PublishedRate]:
    """Every rate of every `Cube time=…` in the document, for the currencies we support."""
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise FeedError("the feed declares a DOCTYPE or entities; refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 - see above
    except ET.ParseError as exc:
        raise FeedError(f"not XML: {exc}") from None
    if root.tag != f"{{{GESMES_NS}}}Envelope":
        raise FeedError(f"not a gesmes envelope: root is {root.tag[:80]}")
    cube = f"{{{EUROFXREF_NS}}}Cube"
    rates: list[PublishedRate] = []
    days = 0
    for day_cube in root.iter(cube):
        when = day_cube.get("time")
        if when is None:
            continue
        try:
            rate_date = date.fromisoformat(when)
        except ValueError:
            raise FeedError(f"bad Cube time {when[:20]!r}") from None
        days += 1
        for entry in day_cube.findall(cube):
            code, text = entry.get("currency"), entry.get("rate")
            if code is None or text is None:
                raise FeedError(f"a Cube of {when} lacks currency or rate")
            currency = code.strip().lower()
            try:
                value = Decimal(text.strip())
            except InvalidOperation:
                raise FeedError(f"bad rate {text[:20]!r} for {code[:8]} on {when}") from None
            if not value.is_finite() or value <= 0:
                raise FeedError(f"bad rate {text[:20]!r} for {code[:8]} on {when}")
            if currency not in SUPPORTED_CURRENCIES:
                continue  # a currency we do not accept payments in (e.g. a discontinued one)
            rates.append(PublishedRate(currency, rate_date, value))
    if days == 0:
        raise FeedError("no Cube with a time attribute: not an ECB reference-rate file")
    return rates


async def fetch_eurofxref(client: httpx.AsyncClient, url: str) -> list[PublishedRate]:
    """GET the feed and parse it; `FeedError` for any network, HTTP or format problem."""
    try:
        async with client.stream("GET", url, headers={"Accept": "application/xml"}) as response:
            if response.status_code != 200:
                raise FeedError(f"HTTP {response.status_code} from the feed")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise FeedError("the feed answered more than 8 MB")
    except httpx.HTTPError as exc:
        raise FeedError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return parse_eurofxref(bytes(body))
