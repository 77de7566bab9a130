"""RSA signing keys for access tokens: generation, on-disk storage, RFC 7638 kids and JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ACCESS_TOKEN_ALGORITHM = "RS256"
RSA_KEY_BITS = 2048


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_rsa_keypair(bits: int = RSA_KEY_BITS) -> tuple[bytes, bytes]:
    """A new RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an RSA public JWK: a kid that is stable across restarts."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


class SigningKey:
    """One RSA private key that signs access tokens (RS256, header `kid`)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TypeError("access tokens are signed with RSA keys only")
        self.private_key = private_key
        self.public_key = private_key.public_key()
        public = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        self._public_jwk: dict[str, Any] = {"kty": "RSA", "n": public["n"], "e": public["e"]}
        self.kid = jwk_thumbprint(self._public_jwk)

    @classmethod
    def generate(cls, bits: int = RSA_KEY_BITS) -> SigningKey:
        return cls.from_pem(generate_rsa_keypair(bits)[0])

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SigningKey:
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("access tokens are signed with RSA keys only")
        return cls(key)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk(self) -> dict[str, Any]:
        return {**self._public_jwk, "kid": self.kid, "use": "sig", "alg": ACCESS_TOKEN_ALGORITHM}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self.private_key,
            algorithm=ACCESS_TOKEN_ALGORITHM,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(kid={self.kid!r})"


def load_or_create_signing_key(path: Path | str) -> SigningKey:
    """Load the PEM at `path`, or create a 2048-bit key there (mode 0600) on first use.

    Two processes starting together both end up with the same key: the file is written under a
    temporary name and hard-linked into place, so exactly one creation wins.
    """
    path = Path(path)
    if path.exists():
        return SigningKey.from_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_pem())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return SigningKey.from_pem(path.read_bytes())
    finally:
        os.unlink(tmp)
    return key


def jwks_document(
    keys: Iterable[SigningKey | Mapping[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """The JSON served at `/.well-known/jwks.json`: public halves only."""
    out: list[dict[str, Any]] = []
    for key in keys:
        jwk = key.public_jwk() if isinstance(key, SigningKey) else dict(key)
        if "d" in jwk or "p" in jwk:
            raise ValueError("refusing to publish a private JWK")
        out.append(jwk)
    return {"keys": out}


def new_jti() -> str:
    return uuid.uuid4().hex
