"""Rates from the bundled ECB history offline, the feed stand-in online, operator rates, conversion, errors."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any

from exchange_rate_service.sources.bundled_history import bundled_archive


def csv_row(day: str) -> dict[str, str]:
    """The ECB's published row for `day`, read straight from the bundled CSV (the oracle)."""
    with zipfile.ZipFile(bundled_archive()) as zf:
        text = zf.read("eurofxref-hist.csv").decode()
    for row in csv.DictReader(io.StringIO(text)):
        if row["Date"] == day:
            return {k.lower(): v for k, v in row.items() if k}
    raise AssertionError(f"{day} not in the bundled history")


def ten_digits(value: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 40
        return value.quantize(Decimal(1).scaleb(value.adjusted() - 9))


def latest_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


async def test_offline_first_start_answers_history_from_the_bundled_csv(
    start_rates_service: Any, feed: Any
) -> None:
    async with start_rates_service(feed_up=False) as svc:  # no feed reachable at first start
        assert (await svc.http.get("/ready")).status_code == 200

        r = await svc.get("/rates/2010-06-15", base="usd")
        assert r.status_code == 200, r.text
        body = r.json()
        row = csv_row("2010-06-15")
        usd = Decimal(row["usd"])
        assert body["base"] == "usd" and body["date"] == "2010-06-15"
        assert body["stale"] is False  # a 2010 rate is not stale for a 2010 question
        for code in ("eur", "gbp", "jpy", "chf", "krw"):
            published = Decimal(1) if code == "eur" else Decimal(row[code])
            assert Decimal(body["rates"][code]) == ten_digits(published / usd), code
        assert body["rates"]["gbp"] == "0.6787404144"  # 0.832 / 1.2258
        assert "usd" not in body["rates"]

        # A Sunday answers with Friday's publication, and says so.
        r = await svc.get("/rates/2010-06-13", base="eur", symbols="usd")
        assert r.json()["date"] == "2010-06-11"
        assert r.json()["rates"] == {"usd": csv_row("2010-06-11")["usd"]}

        # The feed was down: the newest rates are the bundled ones, flagged stale.
        r = await svc.get("/rates/latest", base="eur", symbols="usd")
        latest = r.json()
        assert latest["stale"] is True
        assert date.fromisoformat(latest["date"]) < svc.clock.now.date()
        status = (
            await svc.http.get("/admin/rates", headers=svc.auth(uuid.uuid4(), "admin"))
        ).json()
        daily = next(f for f in status["feeds"] if f["name"] == "ecb-daily")
        assert "503" in daily["last_error"] and daily["last_success_at"] is None

        # The feed comes back with today's rates: a refresh makes them the latest.
        feed.set_down(False)
        today = latest_weekday(svc.clock.now.date())
        feed.publish(today, {"USD": "1.0547", "JPY": "163.21", "GBP": "0.8421"})
        r = await svc.refresh()
        assert r.status_code == 200, r.text
        assert r.json()["latest_rate_date"] == today.isoformat()
        r = await svc.get("/rates/latest", base="usd", symbols="eur,jpy,gbp")
        body = r.json()
        assert body["date"] == today.isoformat()
        assert body["rates"] == {"eur": "0.948136911", "jpy": "154.7454252", "gbp": "0.7984260927"}


async def test_failed_fetch_keeps_the_last_good_rates_and_counts_it(
    start_rates_service: Any, feed: Any
) -> None:
    today = latest_weekday(date.today())
    feed.publish(today, {"USD": "1.0600", "GBP": "0.8500"})
    async with start_rates_service() as svc:
        assert (await svc.refresh()).status_code == 200
        feed.set_down(True)
        r = await svc.refresh()
        assert r.status_code == 502 and r.json()["code"] == "rate_feed_unavailable"
        assert today.isoformat() in r.json()["detail"]
        assert (await svc.http.get("/ready")).status_code == 200
        r = await svc.get("/rates/latest", symbols="usd")
        assert r.json()["rates"] == {"usd": "1.06"} and r.json()["date"] == today.isoformat()
        metrics = (await svc.http.get("/metrics")).text
        assert 'paygate_fx_feed_fetches_total{feed="ecb-daily",outcome="failed"' in metrics
        assert "paygate_fx_rates_age_seconds{" in metrics

        # Older than the configured age: still served, flagged stale.
        svc.clock.advance(days=6)
        r = await svc.get("/rates/latest", symbols="usd")
        assert r.json()["rates"] == {"usd": "1.06"} and r.json()["stale"] is True


async def test_unknown_currency_anywhere_is_422(start_rates_service: Any) -> None:
    async with start_rates_service() as svc:
        user = uuid.uuid4()
        cases = [
            ("/rates/latest", {"base": "xxx"}),
            ("/rates/latest", {"symbols": "eur,zzz"}),
            ("/rates/2010-06-15", {"base": "usd", "symbols": "qqq"}),
            ("/rates/history", {"base": "usd", "symbol": "abc", "from": "2010-06-14"}),
            ("/convert", {"from": "usd", "to": "nope", "amount": 100}),
            ("/convert", {"from": "xyz", "to": "eur", "amount": 100}),
        ]
        for path, params in cases:
            r = await svc.get(path, user, **params)
            assert r.status_code == 422, (path, params, r.text)
            assert r.json()["code"] == "unknown_currency", (path, params)
        r = await svc.http.post(
            "/fx/quotes", json={"from": "usd", "to": "xyz", "amount": 100}, headers=svc.auth(user)
        )
        assert r.status_code == 422 and r.json()["code"] == "unknown_currency"
        # A known currency nobody publishes (yet): not a 500 either.
        r = await svc.get("/convert", user, **{"from": "usd", "to": "bdt", "amount": 100})
        assert r.status_code == 422 and r.json()["code"] == "rate_unavailable"
        r = await svc.get("/rates/1998-12-31", user)
        assert r.status_code == 422 and r.json()["code"] == "rate_unavailable"
        tomorrow = (svc.clock.now.date() + timedelta(days=1)).isoformat()
        for bad in (tomorrow, "2010-13-01", "yesterday"):
            r = await svc.get(f"/rates/{bad}", user)
            assert r.status_code == 422 and r.json()["code"] == "invalid_date_range", bad
        assert (await svc.http.get("/rates/latest")).status_code == 401


async def test_history_lists_each_publication_day_oldest_first(start_rates_service: Any) -> None:
    async with start_rates_service() as svc:
        r = await svc.get(
            "/rates/history", base="usd", symbol="gbp", **{"from": "2010-06-12", "to": "2010-06-18"}
        )
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["date"] for i in items] == [f"2010-06-{d}" for d in (14, 15, 16, 17, 18)]
        for item in items:
            row = csv_row(item["date"])
            assert Decimal(item["rate"]) == ten_digits(Decimal(row["gbp"]) / Decimal(row["usd"]))
        r = await svc.get(
            "/rates/history", base="usd", symbol="gbp", **{"from": "2010-06-18", "to": "2010-06-12"}
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_date_range"


async def test_operator_rate_for_bdt_is_admin_only_audited_and_crossed_through_eur(
    start_rates_service: Any, feed: Any
) -> None:
    today = latest_weekday(date.today())
    feed.publish(today, {"USD": "1.1172", "JPY": "175.68"})
    async with start_rates_service() as svc:
        assert (await svc.refresh()).status_code == 200
        customer = uuid.uuid4()
        r = await svc.http.put(
            "/admin/rates/bdt", json={"rate_per_eur": "136.42"}, headers=svc.auth(customer)
        )
        assert r.status_code == 403
        for bad in ("-1", "0", "1e5", "abc", 136.42):
            r = await svc.set_operator_rate("bdt", bad)  # type: ignore[arg-type]
            assert r.status_code == 422, bad
        r = await svc.set_operator_rate("usd", "1.2")
        assert r.status_code == 422 and r.json()["code"] == "currency_published_by_ecb"

        admin = uuid.uuid4()
        r = await svc.http.put(
            "/admin/rates/BDT", json={"rate_per_eur": "136.42"}, headers=svc.auth(admin, "admin")
        )
        assert r.status_code == 200, r.text
        assert r.json()["set_by"] == str(admin) and r.json()["rate_per_eur"] == "136.42"
        [audit] = await svc.sql(
            "SELECT payload FROM outbox WHERE topic = 'audit.event' ORDER BY id DESC LIMIT 1"
        )
        payload = audit.payload["payload"]
        assert payload["action"] == "fx_rate.set" and payload["entity_id"] == "bdt"
        assert payload["actor_id"] == str(admin)
        assert payload["details"]["rate_per_eur"] == "136.42"

        r = await svc.get("/rates/latest", base="usd", symbols="bdt,eur")
        body = r.json()
        assert body["rates"]["bdt"] == "122.1088435"  # 136.42 / 1.1172
        assert body["date"] == today.isoformat()
        r = await svc.get("/convert", **{"from": "usd", "to": "bdt", "amount": 1000})
        assert r.json()["converted_amount"] == 122109  # 10.00 usd = 1221.088435 taka

        r = await svc.set_operator_rate("bdt", "140")
        assert r.json()["previous_rate_per_eur"] == "136.42"
        r = await svc.get("/rates/latest", base="eur", symbols="bdt")
        assert r.json()["rates"] == {"bdt": "140"}  # the cache was invalidated

        svc.clock.advance(days=8)  # older than the operator-rate age
        r = await svc.get("/rates/latest", base="eur", symbols="bdt")
        assert r.json()["stale"] is True


async def test_convert_uses_each_currency_exponent(start_rates_service: Any, feed: Any) -> None:
    today = latest_weekday(date.today())
    feed.publish(today, {"USD": "1.1172", "JPY": "175.68"})
    async with start_rates_service() as svc:
        assert (await svc.refresh()).status_code == 200
        assert (await svc.set_operator_rate("kwd", "0.3431")).status_code == 200
        r = await svc.get("/convert", **{"from": "jpy", "to": "usd", "amount": 1000})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "from": "jpy",
            "to": "usd",
            "amount": 1000,
            "converted_amount": 636,  # 1000 yen = 6.359289617 dollars
            "rate": "0.006359289617",
            "date": today.isoformat(),
            "stale": False,
        }
        r = await svc.get("/convert", **{"from": "usd", "to": "kwd", "amount": 1000})
        assert r.json()["converted_amount"] == 3071  # 10.00 dollars = 3.071070533 dinars
        assert r.json()["rate"] == "0.3071070533"
        r = await svc.get("/convert", **{"from": "usd", "to": "eur", "amount": 0})
        assert r.status_code == 422


async def test_bundled_history_is_loaded_once_per_database(start_rates_service: Any) -> None:
    async with start_rates_service() as first:
        database_url = first.settings.database_url
        [loaded] = await first.sql(
            "SELECT rows_loaded, last_success_at FROM rate_feeds WHERE name = 'ecb-bundled-history'"
        )
        [count] = await first.sql("SELECT count(*) AS n FROM reference_rates")
    assert count.n >= loaded.rows_loaded > 150_000  # plus what the feed added
    async with start_rates_service(database_url=database_url) as second:
        [again] = await second.sql(
            "SELECT rows_loaded, last_success_at FROM rate_feeds WHERE name = 'ecb-bundled-history'"
        )
        assert again == loaded  # not loaded a second time
        r = await second.get("/rates/2010-06-15", base="eur", symbols="usd")
        assert r.json()["rates"] == {"usd": "1.2258"}
