"""The SMS and Web Push stand-ins speak their providers' protocols, including the refusals."""

from __future__ import annotations

import base64
import json
import secrets
import time

import http_ece
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from paygate_devstack.push_sink import PushSink
from paygate_devstack.sms_sink import SmsSink


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_sms_sink_accepts_a_twilio_message_and_refuses_like_twilio(sms_sink: SmsSink) -> None:
    url = f"{sms_sink.api_base}/2010-04-01/Accounts/{sms_sink.account_sid}/Messages.json"
    auth = (sms_sink.account_sid, sms_sink.auth_token)
    to = "+1555" + str(secrets.randbelow(10**7)).zfill(7)
    ok = httpx.post(url, data={"To": to, "From": "+15005550006", "Body": "hello"}, auth=auth)
    assert ok.status_code == 201
    assert ok.json()["sid"].startswith("SM") and ok.json()["status"] == "queued"
    assert [m["body"] for m in sms_sink.messages(to=to)] == ["hello"]

    wrong = httpx.post(url, data={"To": to, "From": "+1", "Body": "x"}, auth=("AC1", "nope"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)
    bad_number = httpx.post(
        url, data={"To": "0123", "From": "+15005550006", "Body": "x"}, auth=auth
    )
    assert (bad_number.status_code, bad_number.json()["code"]) == (400, 21211)
    no_body = httpx.post(url, data={"To": to, "From": "+15005550006"}, auth=auth)
    assert no_body.json()["code"] == 21602
    assert len(sms_sink.messages(to=to)) == 1


def _vapid(audience: str, *, exp_in: int = 3600) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {"aud": audience, "exp": int(time.time()) + exp_in, "sub": "mailto:ops@example.com"},
        key,
        algorithm="ES256",
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return f"vapid t={token}, k={b64url(public)}", key


def _encrypt(subscription: dict[str, str | dict[str, str]], payload: bytes) -> bytes:
    keys = subscription["keys"]
    assert isinstance(keys, dict)
    receiver = base64.urlsafe_b64decode(keys["p256dh"] + "==")
    auth = base64.urlsafe_b64decode(keys["auth"] + "==")
    return http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=receiver,
        auth_secret=auth,
        version="aes128gcm",
    )


def test_push_sink_checks_vapid_and_decrypts_with_the_subscription_key(push_sink: PushSink) -> None:
    subscription = push_sink.subscribe(
        ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16)
    )
    endpoint = str(subscription["endpoint"])
    origin = endpoint.split("/push/")[0]
    body = _encrypt(subscription, b'{"title": "hi"}')
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm"}

    authorization, _ = _vapid(origin)
    ok = httpx.post(endpoint, content=body, headers={**headers, "Authorization": authorization})
    assert ok.status_code == 201
    [message] = push_sink.messages(endpoint)
    assert json.loads(message["payload"]) == {"title": "hi"}

    wrong_aud, _ = _vapid("https://push.example.com")
    refused = httpx.post(endpoint, content=body, headers={**headers, "Authorization": wrong_aud})
    assert refused.status_code == 401
    too_long, _ = _vapid(origin, exp_in=3 * 86400)
    assert (
        httpx.post(
            endpoint, content=body, headers={**headers, "Authorization": too_long}
        ).status_code
        == 401
    )
    assert httpx.post(endpoint, content=body, headers=headers).status_code == 401
    no_ttl = {"Content-Encoding": "aes128gcm", "Authorization": authorization}
    assert httpx.post(endpoint, content=body, headers=no_ttl).status_code == 400
    other = push_sink.subscribe(ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16))
    # Encrypted for another subscription: this one cannot read it.
    mismatched = httpx.post(
        endpoint,
        content=_encrypt(other, b"x"),
        headers={**headers, "Authorization": authorization},
    )
    assert mismatched.status_code == 400
    push_sink.expire(endpoint)
    gone = httpx.post(endpoint, content=body, headers={**headers, "Authorization": authorization})
    assert gone.status_code == 410
    assert len(push_sink.messages(endpoint)) == 1
