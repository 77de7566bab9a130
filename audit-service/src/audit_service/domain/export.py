"""Export formats of the trail: JSONL (canonical JSON per record) and spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from audit_service.domain.chain import EXPORT_FIELDS, canonical_json, canonical_value, export_line


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


MEDIA_TYPES = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.CSV: "text/csv"}

# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = canonical_json(value).decode()
    else:
        canonical = canonical_value(value)
        text = canonical if isinstance(canonical, str) else str(canonical)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(EXPORT_FIELDS)
    return buffer.getvalue().encode()


def csv_rows(records: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for record in records:
        writer.writerow([_cell(record[name]) for name in EXPORT_FIELDS])
    return buffer.getvalue().encode()


def jsonl_rows(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(export_line(r) for r in records)
