"""Web Push service stand-in (a fake of a browser vendor's push service): checks the VAPID JWT,
decrypts the payload and writes each message as JSON to `.paygate/push/`.

What it checks is what a real push service checks (RFC 8030 delivery, RFC 8292 VAPID):
`POST /push/{token}` with `TTL`, `Content-Encoding: aes128gcm` and
`Authorization: vapid t=<ES256 JWT>, k=<base64url P-256 public key>`; the JWT must verify with
`k`, name this origin as `aud`, expire within 24 h and carry a `sub`. Unknown or expired
subscriptions answer 404/410, as real push services do. A real push service cannot read the
payload; this one also decrypts it (RFC 8291, `http_ece`) with the subscription's private key,
which only exists because the test (or `POST /_config/subscriptions`) created the keypair and
handed it over — the browser's side of the subscription.

python -m paygate_devstack.push_sink --port 51027 --dir .paygate/push
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paygate_devstack.components import SinkProcess
from paygate_devstack.sms_sink import ThreadedServer, serve_forever

MAX_PAYLOAD = 4096  # RFC 8030 §7.2: push services must accept at least 4096 bytes
MAX_JWT_LIFETIME = 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """The browser's half of a subscription: its ECDH private key and auth secret."""

    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    gone: bool = False

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)


def new_subscription_keys() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """What a browser generates when it subscribes: a P-256 keypair and a 16-byte auth secret."""
    return ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16)


class PushRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.subscriptions: dict[str, Subscription] = {}
        self.origin = ""
        self._lock = threading.Lock()

    def register(self, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> dict[str, Any]:
        """A subscription as `PushSubscription.toJSON()` gives it: `{endpoint, keys}`."""
        token = secrets.token_urlsafe(16)
        sub = Subscription(token, private_key, auth)
        with self._lock:
            self.subscriptions[token] = sub
        return {
            "endpoint": f"{self.origin}/push/{token}",
            "keys": {"p256dh": sub.p256dh, "auth": b64url(auth)},
        }

    def expire(self, endpoint: str) -> None:
        """The browser unsubscribed: from now on the push service answers 410."""
        token = endpoint.rsplit("/", 1)[-1]
        with self._lock:
            if token in self.subscriptions:
                self.subscriptions[token].gone = True


def _verify_vapid(header: str, origin: str) -> dict[str, Any]:
    """RFC 8292 §3: `vapid t=<jwt>, k=<key>`; raises ValueError with the reason."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("Authorization scheme must be vapid")
    fields = {}
    for item in params.split(","):
        name, _, value = item.strip().partition("=")
        fields[name.strip()] = value.strip()
    if "t" not in fields or "k" not in fields:
        raise ValueError("vapid needs t= and k=")
    raw = unb64url(fields["k"])
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    try:
        claims = jwt.decode(
            fields["t"],
            key=public,
            algorithms=["ES256"],
            audience=origin,
            options={"require": ["exp", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise ValueError(f"VAPID JWT rejected: {exc}") from None
    if claims["exp"] > time.time() + MAX_JWT_LIFETIME:
        raise ValueError("VAPID JWT expires more than 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise ValueError("VAPID JWT needs a mailto: or https: sub")
    claims["_public_key"] = fields["k"]
    return claims


def build_app(registry: PushRegistry) -> Starlette:
    registry.directory.mkdir(parents=True, exist_ok=True)

    async def push(request: Request) -> Response:
        token = request.path_params["token"]
        sub = registry.subscriptions.get(token)
        if sub is None:
            return JSONResponse({"error": "no such subscription"}, status_code=404)
        if sub.gone:
            return JSONResponse({"error": "subscription expired"}, status_code=410)
        try:
            claims = _verify_vapid(request.headers.get("authorization", ""), registry.origin)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        ttl = request.headers.get("ttl")
        if ttl is None or not ttl.isdigit():
            return JSONResponse({"error": "TTL header required"}, status_code=400)
        body = await request.body()
        if len(body) > MAX_PAYLOAD:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        if request.headers.get("content-encoding") != "aes128gcm":
            return JSONResponse({"error": "Content-Encoding must be aes128gcm"}, status_code=415)
        try:
            plaintext = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
        except Exception as exc:  # wrong keys or tampered: the browser could not read it either
            return JSONResponse({"error": f"cannot decrypt: {type(exc).__name__}"}, status_code=400)
        message_id = secrets.token_hex(8)
        record = {
            "id": message_id,
            "endpoint": f"{registry.origin}/push/{token}",
            "ttl": int(ttl),
            "urgency": request.headers.get("urgency"),
            "topic": request.headers.get("topic"),
            "vapid_sub": claims.get("sub"),
            "vapid_public_key": claims["_public_key"],
            "payload": plaintext.decode("utf-8", errors="replace"),
            "received_at": time.time(),
        }
        name = f"{time.time_ns()}-{message_id}.json"
        tmp = registry.directory / f".{name}.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, registry.directory / name)
        return Response(status_code=201, headers={"Location": f"/message/{message_id}"})

    async def configure(request: Request) -> JSONResponse:
        """For a sink run as a process: create a subscription (keys generated here unless given
        as `{private_key: base64url of the 32-byte scalar, auth: base64url}`)."""
        data = await request.json() if await request.body() else {}
        if data.get("private_key"):
            value = int.from_bytes(unb64url(data["private_key"]), "big")
            key = ec.derive_private_key(value, ec.SECP256R1())
            auth = unb64url(data["auth"]) if data.get("auth") else secrets.token_bytes(16)
        else:
            key, auth = new_subscription_keys()
        return JSONResponse(registry.register(key, auth), status_code=201)

    return Starlette(
        routes=[
            Route("/push/{token}", push, methods=["POST"]),
            Route("/_config/subscriptions", configure, methods=["POST"]),
        ]
    )


def read_messages(directory: Path) -> list[dict[str, Any]]:
    if not directory.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


class PushSink(ThreadedServer):
    """In-process push service: `subscribe(private_key, auth)` → `{endpoint, keys}`,
    `messages(endpoint=None)` (each with the decrypted `payload`), `expire(endpoint)`."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int) -> None:
        self.directory = Path(directory)
        self.registry = PushRegistry(self.directory)
        self.registry.origin = f"http://{host}:{port}"
        super().__init__(build_app(self.registry), host=host, port=port)

    def subscribe(self, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> dict[str, Any]:
        return self.registry.register(private_key, auth)

    def expire(self, endpoint: str) -> None:
        self.registry.expire(endpoint)

    def messages(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        found = read_messages(self.directory)
        return [m for m in found if endpoint is None or m["endpoint"] == endpoint]


class PushSinkProcess(SinkProcess):
    """The push sink as a child process (for `make run`)."""

    name = "push"
    module = "paygate_devstack.push_sink"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.push_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=51027)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    sink = PushSink(args.dir, host=args.host, port=args.port)
    serve_forever(
        sink, f"Web Push sink (push-service stand-in) on {sink.url}, messages in {args.dir}"
    )


if __name__ == "__main__":
    main()
