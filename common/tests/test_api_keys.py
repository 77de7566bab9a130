"""The API key format: recognisable prefix, checksum caught locally, scopes, masked in logs."""

from __future__ import annotations

import pytest

from paygate_common.auth import (
    generate_api_key,
    key_environment,
    looks_like_api_key,
    parse_api_key,
    scopes_allow,
)
from paygate_common.logging import mask


def test_generated_keys_parse_back_and_are_unique() -> None:
    keys = {generate_api_key("test")[0] for _ in range(200)}
    assert len(keys) == 200
    key, parsed = generate_api_key("live")
    assert key.startswith("pgk_live_") and len(key) == 59
    assert parse_api_key(key) == parsed
    assert parsed.prefix == key[:21]
    assert looks_like_api_key(key) and not looks_like_api_key("eyJhbGciOi.x.y")


def test_every_single_character_change_fails_the_checksum() -> None:
    key, _ = generate_api_key("test")
    for i in range(9, len(key)):
        for replacement in "0aZ":
            if key[i] != replacement:
                assert parse_api_key(key[:i] + replacement + key[i + 1 :]) is None, i


@pytest.mark.parametrize(
    "token",
    [
        "pgk_test_",
        "pgk_prod_" + "a" * 50,
        "pgk_test_" + "a" * 49,
        "pgk_test_" + "-" * 50,
        "pgk_eyJ.e30.sig",
    ],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_api_key(token) is None


def test_environments_and_scopes() -> None:
    assert key_environment("production") == "live"
    assert key_environment("development") == key_environment("test") == "test"
    scopes = frozenset({"payments:read", "orders:write"})
    assert scopes_allow(scopes, "payments", "GET")
    assert not scopes_allow(scopes, "payments", "POST")
    assert scopes_allow(scopes, "orders", "GET") and scopes_allow(scopes, "orders", "DELETE")
    assert not scopes_allow(scopes, "webhooks", "GET")


def test_keys_and_refresh_tokens_are_masked_in_logs() -> None:
    key, _ = generate_api_key("live")
    masked = mask(f"calling with {key} and refresh pgr_{'Ab3' * 14}x")
    assert key[9:] not in masked and "Ab3Ab3" not in masked
    assert "pgk_" not in masked and "pgr_" not in masked
    assert masked == "calling with [redacted] and refresh [redacted]"
