"""History pages and balances, served from Redis when the user's data has not changed.

A page's cache key carries the user's *version*: the highest `transactions.version`, taken from
a sequence in the same database transaction that changes a row. A reader reads the version
from PostgreSQL first (an index-only max), then the page stored under it. Once a change has
committed, every reader sees the new version and so a new key: a cached page can never be
older than what is committed, with no invalidation step that could be lost or come late.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.auth import Principal, owned_or_raise
from transaction_service.domain.errors import TransactionNotFound
from transaction_service.store import history as store

log = logging.getLogger("transaction_service.history")

HISTORY_CACHE = Counter(
    "paygate_history_cache_total",
    "History and balance reads by cache result (hit, miss, error)",
    ["service", "result"],
)
KEY_PREFIX = "paygate:transactions:v1"


async def cached_page(
    *,
    session: AsyncSession,
    redis: Redis,
    service: str,
    ttl_seconds: int,
    user_id: uuid.UUID,
    view: str,
    params: dict[str, Any],
    build: Callable[[], Awaitable[Any]],
) -> bytes:
    """The JSON of a page: from Redis under the user's current version, else built and stored."""
    version = await store.user_version(session, user_id)
    digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    key = f"{KEY_PREFIX}:{user_id}:{version}:{view}:{digest}"
    try:
        cached = await redis.get(key)
    except RedisError:
        cached = None
        HISTORY_CACHE.labels(service, "error").inc()
        log.warning("history cache unreachable; reading PostgreSQL", exc_info=True)
    else:
        if cached is not None:
            HISTORY_CACHE.labels(service, "hit").inc()
            return cached if isinstance(cached, bytes) else cached.encode()
        HISTORY_CACHE.labels(service, "miss").inc()
    body = orjson.dumps(await build())
    try:
        await redis.set(key, body, ex=ttl_seconds)
    except RedisError:
        log.warning("could not store a history page in Redis", exc_info=True)
    return body


async def transaction_for(
    *, session: AsyncSession, payment_id: uuid.UUID, principal: Principal
) -> Any:
    """The transaction if the caller owns it or is an admin; otherwise TransactionNotFound."""
    row = await store.fetch_transaction(session, payment_id)
    return owned_or_raise(row, principal, TransactionNotFound(f"No transaction {payment_id}"))
