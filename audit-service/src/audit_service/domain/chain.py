"""The hash chain: canonical JSON of a record, its SHA-256 link, HMAC-signed checkpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The `prev_hash` of the first record.
GENESIS_HASH = "0" * 64

# Every column of a record that its hash covers: all but `prev_hash` and `hash`.
HASHED_FIELDS = (
    "seq",
    "id",
    "event_id",
    "event_type",
    "producer",
    "occurred_at",
    "recorded_at",
    "action",
    "outcome",
    "actor_id",
    "actor_role",
    "entity_type",
    "entity_id",
    "aggregate_id",
    "source_ip",
    "request_id",
    "details",
)


def canonical_value(value: Any) -> Any:
    """JSON values as RFC 8785 wants them; datetimes and UUIDs as the strings we store."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON has no NaN or infinity")
        # 1.0 and 1 are the same JSON number; JSONB may give either back.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_value(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (RFC 8785 style; numbers are integers or floats)."""
    return json.dumps(
        canonical_value(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def record_body(record: Mapping[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in HASHED_FIELDS}


def record_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """`SHA-256(prev_hash ‖ canonical JSON of the record)`, hex; prev_hash as its hex text."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(record_body(record)))
    return digest.hexdigest()


def sign(key: bytes, statement: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of a checkpoint's or archive's canonical JSON."""
    return hmac.new(key, canonical_json(statement), hashlib.sha256).hexdigest()


def signature_valid(key: bytes, statement: Mapping[str, Any], signature: str) -> bool:
    return hmac.compare_digest(sign(key, statement), signature)


def checkpoint_statement(*, record_count: int, head_seq: int, head_hash: str) -> dict[str, Any]:
    return {"record_count": record_count, "head_seq": head_seq, "head_hash": head_hash}


def archive_statement(archive: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: archive[name]
        for name in (
            "from_seq",
            "to_seq",
            "record_count",
            "first_prev_hash",
            "last_hash",
            "location",
            "sha256",
        )
    }


EXPORT_FIELDS = (*HASHED_FIELDS, "prev_hash", "hash")


def export_line(record: Mapping[str, Any]) -> bytes:
    """One JSONL line of an export or archive: enough to re-check the record's hash offline."""
    return canonical_json({name: record[name] for name in EXPORT_FIELDS}) + b"\n"
