"""Merchant API keys: the `pgk_<env>_…` format that user-service issues and the gateway recognises.

A key is `pgk_live_` or `pgk_test_` followed by 50 base62 characters: a 12-character lookup id
(the row to compare against, shown in lists as part of `prefix`), a 32-character secret (about
190 bits) and a 6-character CRC32 checksum of everything before it, as GitHub's tokens carry.
The checksum lets the gateway refuse a mistyped or made-up key without asking user-service, and
lets secret scanners tell a real key from a lookalike; it is not a security boundary (the secret
is checked with an HMAC in user-service).
"""

from __future__ import annotations

import secrets
import string
import zlib
from dataclasses import dataclass

API_KEY_PREFIX = "pgk_"
LOOKUP_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
_BODY_LENGTH = LOOKUP_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ALPHABET_SET = frozenset(_ALPHABET)
KEY_ENVIRONMENTS = ("live", "test")

# What a scoped key may reach: `<resource>:read` (GET, HEAD, OPTIONS) or `<resource>:write`
# (everything, reads included, as Stripe's restricted keys). The resource is the first path
# segment under `/api/v1`; a key without scopes acts with all of its owner's rights.
SCOPE_RESOURCES = (
    "payments",
    "orders",
    "webhooks",
    "notifications",
    "transactions",
    "balance",
    "rates",
    "convert",
    "fx",
    "users",
)
API_KEY_SCOPES = frozenset(f"{r}:{a}" for r in SCOPE_RESOURCES for a in ("read", "write"))
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def random_base62(length: int) -> str:
    """Random letters and digits: no `-` or `=` to break a double-click selection or a masking regex."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def key_environment(environment: str) -> str:
    """`live` keys for production, `test` keys everywhere else: a test key never works live."""
    return "live" if environment == "production" else "test"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(head: str) -> str:
    return _base62(zlib.crc32(head.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True, slots=True)
class ParsedApiKey:
    environment: str
    lookup_id: str

    @property
    def prefix(self) -> str:
        """What lists show to tell keys apart: `pgk_test_` + the lookup id, never the secret."""
        return f"{API_KEY_PREFIX}{self.environment}_{self.lookup_id}"


def looks_like_api_key(token: str) -> bool:
    """True when the bearer token claims to be an API key (it may still be malformed)."""
    return token.startswith(API_KEY_PREFIX)


def generate_api_key(environment: str) -> tuple[str, ParsedApiKey]:
    """A new key for `live` or `test` and its parsed form; the key is shown to its owner once."""
    if environment not in KEY_ENVIRONMENTS:
        raise ValueError(f"unknown key environment {environment!r}")
    lookup_id = random_base62(LOOKUP_ID_LENGTH)
    secret = random_base62(SECRET_LENGTH)
    head = f"{API_KEY_PREFIX}{environment}_{lookup_id}{secret}"
    return head + _checksum(head), ParsedApiKey(environment, lookup_id)


def parse_api_key(token: str) -> ParsedApiKey | None:
    """The key's environment and lookup id, or None unless format and checksum are right."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    environment, sep, body = token[len(API_KEY_PREFIX) :].partition("_")
    if not sep or environment not in KEY_ENVIRONMENTS or len(body) != _BODY_LENGTH:
        return None
    if not _ALPHABET_SET.issuperset(body):
        return None
    head, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if not secrets.compare_digest(_checksum(head), checksum):
        return None
    return ParsedApiKey(environment, body[:LOOKUP_ID_LENGTH])


def required_scope(path_segment: str, method: str) -> str:
    """The scope a request needs: `payments:read` for `GET /api/v1/payments/...`."""
    return f"{path_segment}:{'read' if method in _READ_METHODS else 'write'}"


def scopes_allow(scopes: frozenset[str], path_segment: str, method: str) -> bool:
    """Whether a scoped key may make this request; `write` on a resource includes `read`."""
    if f"{path_segment}:write" in scopes:
        return True
    return method in _READ_METHODS and f"{path_segment}:read" in scopes
