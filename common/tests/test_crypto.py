"""Envelope encryption: sealed values open only under their key and row, and survive KEK rotation."""

from __future__ import annotations

import pytest

from paygate_common.crypto import DecryptionError, EnvelopeCipher, Sealed, decode_key, new_key


def test_a_sealed_secret_opens_with_its_key_and_never_holds_the_plaintext() -> None:
    cipher = EnvelopeCipher({"k1": new_key()}, "k1")
    sealed = cipher.seal(b"whsec_topsecret", aad=b"endpoint:1")
    assert sealed.key_id == "k1"
    assert b"whsec_topsecret" not in sealed.blob
    assert cipher.open(sealed, aad=b"endpoint:1") == b"whsec_topsecret"
    # Two seals of the same value differ (fresh data key and nonces).
    assert cipher.seal(b"whsec_topsecret").blob != cipher.seal(b"whsec_topsecret").blob


def test_another_row_a_tampered_blob_or_an_unknown_key_does_not_open() -> None:
    cipher = EnvelopeCipher({"k1": new_key()}, "k1")
    sealed = cipher.seal(b"secret", aad=b"endpoint:1")
    with pytest.raises(DecryptionError):
        cipher.open(sealed, aad=b"endpoint:2")
    flipped = bytearray(sealed.blob)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.open(Sealed("k1", bytes(flipped)), aad=b"endpoint:1")
    with pytest.raises(DecryptionError):
        EnvelopeCipher({"k2": new_key()}, "k2").open(sealed, aad=b"endpoint:1")


def test_rewrap_moves_a_value_to_the_new_key_without_changing_it() -> None:
    old, new = new_key(), new_key()
    sealed = EnvelopeCipher({"k1": old}, "k1").seal(b"secret", aad=b"a")
    rotating = EnvelopeCipher({"k1": old, "k2": new}, "k2")
    rewrapped = rotating.rewrap(sealed, aad=b"a")
    assert rewrapped.key_id == "k2"
    assert EnvelopeCipher({"k2": new}, "k2").open(rewrapped, aad=b"a") == b"secret"


def test_keys_must_be_32_bytes_of_base64_and_the_active_one_configured() -> None:
    with pytest.raises(ValueError):
        decode_key("c2hvcnQ=")
    with pytest.raises(ValueError):
        EnvelopeCipher({"k1": new_key()}, "k9")
