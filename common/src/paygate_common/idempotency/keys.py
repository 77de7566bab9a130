"""Idempotency keys themselves: validation, the request fingerprint, scopes and the 4xx errors."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import orjson

from paygate_common.errors import Conflict, InvalidRequest, PaygateError

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# Stripe allows 255 characters; printable ASCII without spaces keeps keys safe in logs and headers.
MAX_KEY_LENGTH = 255
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")

DEFAULT_TTL_SECONDS = 24 * 3600
# How long a claim may stay in progress before a retry may take it over (process died mid-way).
DEFAULT_LEASE_SECONDS = 60.0


class IdempotencyKeyInvalid(PaygateError):
    status_code, code, title = 400, "idempotency_key_invalid", "The Idempotency-Key is not valid"


class IdempotencyKeyReused(InvalidRequest):
    code, title = "idempotency_key_reused", "The Idempotency-Key was used with a different request"


class IdempotencyKeyInProgress(Conflict):
    code, title = (
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is still being processed",
    )


def validate_key(key: str) -> str:
    """The key itself, or `IdempotencyKeyInvalid` (never echoes the value back)."""
    if not _KEY_RE.fullmatch(key):
        raise IdempotencyKeyInvalid(
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "without spaces"
        )
    return key


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace: two equal JSON documents give equal bytes."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def request_fingerprint(data: Any) -> str:
    """SHA-256 of the canonical JSON of a request body (already parsed)."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def body_fingerprint(raw: bytes) -> str:
    """Fingerprint of a raw body: canonical when it is JSON, the bytes themselves otherwise."""
    if not raw.strip():
        return request_fingerprint(None)
    try:
        return request_fingerprint(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return hashlib.sha256(raw).hexdigest()


def idempotency_scope(caller: uuid.UUID | str, endpoint: str) -> str:
    """Keys are per caller and per endpoint: one user's key never collides with another's."""
    return f"{caller}|{endpoint}"
