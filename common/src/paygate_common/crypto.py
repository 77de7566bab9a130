"""Envelope encryption for secrets at rest: AES-256-GCM data keys wrapped by named key-encryption keys.

Each sealed value gets its own random data key (DEK); the DEK is encrypted ("wrapped") with the
active key-encryption key (KEK) from settings, named by a `key_id` stored next to the value.
Rotating the KEK re-wraps the DEK only (`EnvelopeCipher.rewrap`), so the secret itself is never
decrypted into anything but memory. `aad` binds a sealed value to its row and column: a
ciphertext copied onto another row does not open.

Keys come from settings as `{"<key_id>": "<base64 of 32 random bytes>"}`;
`python -m paygate_common.crypto new-key` prints a fresh one.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12
_KEY_BYTES = 32
_WRAPPED_DEK = _KEY_BYTES + 16  # the DEK plus its GCM tag


class DecryptionError(Exception):
    """The value was not sealed under a key we hold, or was tampered with."""


@dataclass(frozen=True)
class Sealed:
    """A sealed value as stored: the KEK's id and the opaque blob (version, wrapped DEK, data)."""

    key_id: str
    blob: bytes


def decode_key(value: str) -> bytes:
    """A KEK from its base64 text; refuses anything but 32 bytes (AES-256)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("an encryption key must be base64") from None
    if len(raw) != _KEY_BYTES:
        raise ValueError(f"an encryption key must be {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


def new_key() -> str:
    """A fresh KEK, base64-encoded, for settings."""
    return base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()


class EnvelopeCipher:
    """Seals under the active KEK; opens under any KEK it was given (old ones during rotation)."""

    def __init__(self, keys: Mapping[str, bytes | str], active_key_id: str) -> None:
        self._keys = {
            key_id: AESGCM(key if isinstance(key, bytes) else decode_key(key))
            for key_id, key in keys.items()
        }
        if active_key_id not in self._keys:
            raise ValueError(f"the active encryption key {active_key_id!r} is not configured")
        self.active_key_id = active_key_id

    def seal(self, plaintext: bytes, *, aad: bytes = b"") -> Sealed:
        dek = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
        dek_nonce, data_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = self._keys[self.active_key_id].encrypt(dek_nonce, dek, aad)
        data = AESGCM(dek).encrypt(data_nonce, plaintext, aad)
        return Sealed(self.active_key_id, _VERSION + dek_nonce + wrapped + data_nonce + data)

    def open(self, sealed: Sealed, *, aad: bytes = b"") -> bytes:
        kek = self._keys.get(sealed.key_id)
        if kek is None:
            raise DecryptionError(f"no encryption key {sealed.key_id!r} is configured")
        dek_nonce, wrapped, data_nonce, data = _split(sealed.blob)
        try:
            dek = kek.decrypt(dek_nonce, wrapped, aad)
            return AESGCM(dek).decrypt(data_nonce, data, aad)
        except InvalidTag:
            raise DecryptionError(
                "the sealed value does not open (wrong key or tampered)"
            ) from None

    def rewrap(self, sealed: Sealed, *, aad: bytes = b"") -> Sealed:
        """The same value under the active KEK: only the data key is re-encrypted."""
        if sealed.key_id == self.active_key_id:
            return sealed
        kek = self._keys.get(sealed.key_id)
        if kek is None:
            raise DecryptionError(f"no encryption key {sealed.key_id!r} is configured")
        dek_nonce, wrapped, data_nonce, data = _split(sealed.blob)
        try:
            dek = kek.decrypt(dek_nonce, wrapped, aad)
        except InvalidTag:
            raise DecryptionError(
                "the sealed value does not open (wrong key or tampered)"
            ) from None
        new_nonce = os.urandom(_NONCE)
        rewrapped = self._keys[self.active_key_id].encrypt(new_nonce, dek, aad)
        return Sealed(self.active_key_id, _VERSION + new_nonce + rewrapped + data_nonce + data)


def _split(blob: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    if not blob or blob[:1] != _VERSION or len(blob) < 1 + 2 * _NONCE + _WRAPPED_DEK + 16:
        raise DecryptionError("not a sealed value of a known version")
    at = 1
    dek_nonce = blob[at : at + _NONCE]
    at += _NONCE
    wrapped = blob[at : at + _WRAPPED_DEK]
    at += _WRAPPED_DEK
    data_nonce = blob[at : at + _NONCE]
    at += _NONCE
    return dek_nonce, wrapped, data_nonce, blob[at:]


if __name__ == "__main__":  # python -m paygate_common.crypto new-key
    if sys.argv[1:] != ["new-key"]:
        sys.exit("usage: python -m paygate_common.crypto new-key")
    print(new_key())
