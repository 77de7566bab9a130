"""A tiny upstream run as its own process (uvicorn), one copy per instance, for the balancer tests.

It says which instance answered (`INSTANCE` in its environment) so a test can see the spread.
"""

from __future__ import annotations

import json
import os
from typing import Any

NAME = os.environ.get("INSTANCE", "?").encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    body = json.dumps({"instance": NAME.decode(), "method": scope["method"]}).encode()
    status = 200 if not scope["path"].endswith("/fail") else 500
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"x-instance", NAME)],
        }
    )
    await send({"type": "http.response.body", "body": body})
