"""The benchmark's upstream: one small FastAPI endpoint, plus a JWKS and an API-key resolver
posing as user-service.

Run as `uvicorn upstream:app`; `BENCH_JWKS` holds the JWKS JSON the gateway will fetch,
`BENCH_SIGNING_KEY` the PEM that signs what `/internal/api-keys/resolve` answers, and
`BENCH_API_KEYS` a JSON map of API key → owner user id (what user-service would look up).
"""

from __future__ import annotations

import json
import os
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from paygate_common.auth import SigningKey, issue_access_token

app = FastAPI()
_JWKS = json.loads(os.environ.get("BENCH_JWKS", '{"keys": []}'))
_SIGNER = (
    SigningKey.from_pem(os.environ["BENCH_SIGNING_KEY"])
    if os.environ.get("BENCH_SIGNING_KEY")
    else None
)
_KEYS: dict[str, str] = json.loads(os.environ.get("BENCH_API_KEYS", "{}"))
RESOLVES = {"count": 0}


@app.get("/orders/{order_id}")
async def order(order_id: str) -> dict[str, object]:
    return {"id": order_id, "status": "pending", "amount": 1999, "currency": "usd"}


@app.get("/.well-known/jwks.json")
async def jwks() -> dict[str, object]:
    return _JWKS


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/internal/api-keys/resolve")
async def resolve_api_key(request: Request) -> JSONResponse:
    """What user-service answers: a 60 s access token of the key's owner (see apikeys.py)."""
    RESOLVES["count"] += 1
    owner = _KEYS.get((await request.json()).get("key", ""))
    if owner is None or _SIGNER is None:
        return JSONResponse({"code": "api_key_invalid"}, status_code=401)
    token, ttl = issue_access_token(
        _SIGNER,
        user_id=owner,
        role="merchant",
        email=None,
        issuer="paygate",
        audience="paygate-api",
        ttl_seconds=60,
        extra_claims={"api_key_id": str(uuid.uuid5(uuid.NAMESPACE_URL, owner))},
    )
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": ttl})


@app.get("/bench/resolves")
async def resolves() -> dict[str, int]:
    return RESOLVES
