"""The gateway's authentication step alone, cached JWT vs cached API key, in one process.

    uv run python bench/gateway/auth_path.py

`run.py` compares the two end to end, but on a shared, loaded machine its req/s swing by tens of
percent between runs of the same code. This times only what differs between them: the proxy's
`_authenticate` for an already verified JWT, and for an API key whose resolved token is cached
(plus the forwarded `authorization` line: the client's for a JWT, the resolved token's for a key),
so the comparison does not depend on load. The two alternate (JWT, key, key, JWT, …) so a change
in machine load during the run falls on both alike.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

from gateway.apikeys import ApiKeyAuthenticator, _Answer
from gateway.proxy import Proxy
from gateway.routes import RouteTable
from gateway.settings import GatewaySettings
from paygate_common.auth import (
    JWKSCache,
    SigningKey,
    generate_api_key,
    issue_access_token,
    verify_with_key,
)

ISSUER, AUDIENCE = "paygate", "paygate-api"
PATH = "/api/v1/orders/ord_bench_1"


async def main(rounds: int = 7, n: int = 100_000) -> None:
    signer = SigningKey.generate()
    settings = GatewaySettings()
    jwks = JWKSCache.from_signing_keys([signer])
    keys = ApiKeyAuthenticator(settings, jwks)
    proxy = Proxy(settings, RouteTable(), breakers={}, limiter=None, jwks=jwks, api_keys=keys)
    jwt_token, _ = issue_access_token(
        signer, user_id=uuid.uuid4(), role="merchant", email=None, issuer=ISSUER,
        audience=AUDIENCE, ttl_seconds=3600,
    )  # fmt: skip
    minted, _ = issue_access_token(
        signer, user_id=uuid.uuid4(), role="merchant", email=None, issuer=ISSUER,
        audience=AUDIENCE, ttl_seconds=3600, extra_claims={"api_key_id": str(uuid.uuid4())},
    )  # fmt: skip
    api_key, _ = generate_api_key("test")
    principal = verify_with_key(minted, signer.public_key, issuer=ISSUER, audience=AUDIENCE)
    forever = time.monotonic() + 3600
    line = b"authorization: Bearer " + minted.encode() + b"\r\n"
    keys._answers[api_key] = _Answer(principal, line, forever, forever)  # as after a resolve

    async def per_call_us(token: str) -> float:
        authorization = b"Bearer " + token.encode()
        headers = [b"host: gw\r\n", b"accept: */*\r\n"]
        await proxy._authenticate(authorization, "GET", PATH)  # warm (verifies the JWT once)
        started = time.perf_counter()
        for _ in range(n):
            fwd = list(headers)
            _, swap = await proxy._authenticate(authorization, "GET", PATH)
            fwd.append(swap or b"authorization: " + authorization + b"\r\n")  # as Proxy._handle
        return (time.perf_counter() - started) / n * 1e6

    jwt_us, key_us = [], []
    for r in range(rounds):
        if r % 2 == 0:
            jwt_us.append(await per_call_us(jwt_token))
            key_us.append(await per_call_us(api_key))
        else:
            key_us.append(await per_call_us(api_key))
            jwt_us.append(await per_call_us(jwt_token))
    print(f"cached JWT: median {statistics.median(jwt_us):.2f} us per request ({rounds} x {n})")
    print(f"cached key: median {statistics.median(key_us):.2f} us per request")
    print(f"key / JWT: {statistics.median(key_us) / statistics.median(jwt_us):.2f}x")
    pairs = [k / j for k, j in zip(key_us, jwt_us, strict=True)]
    print("key / JWT per pair: " + ", ".join(f"{x:.2f}" for x in pairs))
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    await keys.aclose()


if __name__ == "__main__":
    asyncio.run(main())
