"""The ECB XML parser against the feed stand-in's wire format, its refusals, and the bundled CSV reader."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from exchange_rate_service.sources.bundled_history import read_history
from exchange_rate_service.sources.ecb_xml import FeedError, fetch_eurofxref, parse_eurofxref
from paygate_devstack.ecb_feed import eurofxref_xml

# The head of the real file as the ECB serves it (single-quoted attributes, tabs).
REAL_ECB_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
\t<gesmes:subject>Reference rates</gesmes:subject>
\t<gesmes:Sender>
\t\t<gesmes:name>European Central Bank</gesmes:name>
\t</gesmes:Sender>
\t<Cube>
\t\t<Cube time='2026-10-30'>
\t\t\t<Cube currency='USD' rate='1.1172'/>
\t\t\t<Cube currency='JPY' rate='175.68'/>
\t\t\t<Cube currency='ISK' rate='136.00'/>
\t\t</Cube>
\t\t<Cube time='2026-10-29'>
\t\t\t<Cube currency='USD' rate='1.1158'/>
\t\t</Cube>
\t</Cube>
</gesmes:Envelope>"""


def test_parses_the_ecb_layout_into_decimals_for_every_day() -> None:
    rates = parse_eurofxref(REAL_ECB_SAMPLE)
    assert [(r.currency, r.rate_date, r.rate_per_eur) for r in rates] == [
        ("usd", date(2026, 10, 30), Decimal("1.1172")),
        ("jpy", date(2026, 10, 30), Decimal("175.68")),
        ("isk", date(2026, 10, 30), Decimal("136.00")),
        ("usd", date(2026, 10, 29), Decimal("1.1158")),
    ]
    assert all(isinstance(r.rate_per_eur, Decimal) for r in rates)


def test_the_stand_in_speaks_the_same_format() -> None:
    body = eurofxref_xml(date(2026, 12, 1), {"USD": "1.0547", "GBP": "0.8421"})
    rates = parse_eurofxref(body)
    assert {(r.currency, str(r.rate_per_eur)) for r in rates} == {
        ("usd", "1.0547"),
        ("gbp", "0.8421"),
    }
    assert {r.rate_date for r in rates} == {date(2026, 12, 1)}


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<html><body>maintenance</body></html>",
        REAL_ECB_SAMPLE.replace(b"rate='1.1172'", b"rate='-1'"),
        REAL_ECB_SAMPLE.replace(b"rate='1.1172'", b"rate='NaN'"),
        REAL_ECB_SAMPLE.replace(b"time='2026-10-30'", b"time='yesterday'"),
        REAL_ECB_SAMPLE.replace(
            b'<?xml version="1.0" encoding="UTF-8"?>',
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>',
        ),
        REAL_ECB_SAMPLE.split(b"\t<Cube>")[0] + b"</gesmes:Envelope>",
    ],
)
def test_anything_else_is_a_feed_error(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_eurofxref(body)


async def test_fetch_reads_the_stand_in_over_http_and_its_control_api(feed: Any) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.post(
            feed.url + "/_config/publish", json={"time": "2026-11-30", "rates": {"CHF": "0.9301"}}
        )
        assert r.status_code == 200
        rates = await fetch_eurofxref(client, feed.daily_url)
        assert [(r.currency, r.rate_date, r.rate_per_eur) for r in rates] == [
            ("chf", date(2026, 11, 30), Decimal("0.9301"))
        ]
        await client.post(feed.url + "/_config/outage", json={"down": True})
        with pytest.raises(FeedError, match="503"):
            await fetch_eurofxref(client, feed.daily_url)
        with pytest.raises(FeedError, match="ConnectError"):
            await fetch_eurofxref(client, "http://127.0.0.1:9/eurofxref-daily.xml")


def test_bundled_history_is_decimal_and_skips_n_a() -> None:
    by_day: dict[date, dict[str, Decimal]] = {}
    for rate in read_history():
        by_day.setdefault(rate.rate_date, {})[rate.currency] = rate.rate_per_eur
    assert by_day[date(2010, 6, 15)]["usd"] == Decimal("1.2258")
    assert by_day[date(1999, 1, 4)]["usd"] == Decimal("1.1789")
    assert "bgn" not in by_day[date(1999, 1, 4)]  # N/A that day
    assert "cyp" not in by_day[date(1999, 1, 4)]  # not a currency paygate accepts
    assert len(by_day) > 7000
