"""Processed outbox and inbox rows are purged after their retention, and nothing younger is."""

import secrets
import uuid
from typing import Any, ClassVar

from sqlalchemy import text

from paygate_common.db import create_engine
from paygate_common.outbox import RetentionPolicy, purge_processed
from paygate_common.settings import ServiceSettings
from paygate_devstack.events_testing import create_schema_with_outbox


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "retention-test"


async def test_only_rows_past_retention_are_purged(postgres: Any) -> None:
    settings = _Settings(
        database_url=await postgres.acreate_database(), db_schema=f"svc_{secrets.token_hex(4)}"
    )
    engine = create_engine(settings)
    await create_schema_with_outbox(engine, settings.db_schema)
    try:
        async with engine.begin() as conn:
            for state, age_days in (("published", 10), ("published", 1), ("pending", 30)):
                await conn.execute(
                    text(
                        "INSERT INTO outbox (event_id, topic, key, event_type, payload, headers, state,"
                        " created_at, published_at) VALUES (:id, 't', 'k', 'x', '{}', '{}', :state,"
                        " now() - make_interval(days => :age), CASE WHEN :state = 'published'"
                        " THEN now() - make_interval(days => :age) END)"
                    ),
                    {"id": uuid.uuid4(), "state": state, "age": age_days},
                )
            for age_days in (20, 2):
                await conn.execute(
                    text(
                        "INSERT INTO inbox (consumer, event_id, processed_at)"
                        " VALUES ('c', :id, now() - make_interval(days => :age))"
                    ),
                    {"id": uuid.uuid4(), "age": age_days},
                )
        policy = RetentionPolicy(outbox_published_days=3, inbox_days=14, batch_size=1)
        assert await purge_processed(engine, policy) == (1, 1)
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT state FROM outbox ORDER BY state"))).scalars()
            assert list(left) == ["pending", "published"]  # the old pending row is never purged
            assert (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one() == 1
    finally:
        await engine.dispose()
