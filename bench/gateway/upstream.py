"""The benchmark's upstream: one small FastAPI endpoint, plus a JWKS posing as user-service.

Run as `uvicorn upstream:app`; `BENCH_JWKS` holds the JWKS JSON the gateway will fetch.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

app = FastAPI()
_JWKS = json.loads(os.environ.get("BENCH_JWKS", '{"keys": []}'))


@app.get("/orders/{order_id}")
async def order(order_id: str) -> dict[str, object]:
    return {"id": order_id, "status": "pending", "amount": 1999, "currency": "usd"}


@app.get("/.well-known/jwks.json")
async def jwks() -> dict[str, object]:
    return _JWKS


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
