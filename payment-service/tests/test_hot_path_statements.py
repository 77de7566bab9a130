"""Round trips of the checkout hot path: `order.create` intake and one executor pass.

Counts every statement (and transaction) payment-service sends to PostgreSQL for a consumed
batch of orders and for charging them, so a change that goes back to per-row statements
shows up as a number that grows with the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import event, func, select

from paygate_common.consumer.handlers import per_event
from paygate_common.db import create_engine, create_sessionmaker, unit_of_work
from paygate_common.events import OrderCreated, new_event
from paygate_common.http import ServiceClient
from payment_service.connectors import build_connector
from payment_service.domain.payment_context import UserDirectory
from payment_service.events.handlers import order_handler
from payment_service.settings import Settings
from payment_service.store.tables import outbox, payment_attempts, payments
from payment_service.workers.executor import PaymentExecutor

BATCH = 20


class StatementCounter:
    """Statements and commits sent on an engine while `counting` is set."""

    def __init__(self, engine: Any) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.counting = False
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.counting:
            self.statements.append(" ".join(statement.split())[:60])

    def _commit(self, _conn: Any) -> None:
        if self.counting:
            self.commits += 1

    def reset(self) -> None:
        self.statements.clear()
        self.commits = 0


@pytest.fixture
async def hot_path(
    own_database: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[tuple[PaymentExecutor, Any, StatementCounter]]:
    settings = settings_factory(database_url=own_database, executor_batch_size=BATCH)
    engine = create_engine(settings, pool_size=2)
    counter = StatementCounter(engine)
    sessionmaker = create_sessionmaker(engine)
    connector, transport = build_connector(settings, engine=engine)
    client = ServiceClient(settings, target="user", retries=0)
    executor = PaymentExecutor(
        settings=settings,
        sessionmaker=sessionmaker,
        connector=connector,
        transport=transport,
        users=UserDirectory(client),
    )
    yield executor, sessionmaker, counter
    await client.aclose()
    await transport.aclose()
    await engine.dispose()


def order_created(user_id: uuid.UUID) -> Any:
    order = OrderCreated(
        order_id=uuid.uuid4(),
        user_id=user_id,
        amount=1500,
        currency="usd",
        payment_method_provider="stripe",
        payment_method_token="pm_card_visa",
    )
    return new_event(order, producer="order-service", aggregate_id=str(order.order_id))


async def test_a_batch_of_orders_is_recorded_and_charged_in_a_constant_number_of_statements(
    hot_path: tuple[PaymentExecutor, Any, StatementCounter],
) -> None:
    executor, sessionmaker, counter = hot_path
    handle = per_event(order_handler(provider="stripe"))
    user_id = uuid.uuid4()
    envelopes = [order_created(user_id) for _ in range(BATCH)]

    counter.counting = True
    async with unit_of_work(sessionmaker) as session:  # the consumer runner's transaction
        await handle(session, envelopes)
    intake = list(counter.statements)
    counter.reset()
    assert await executor.run_once() == BATCH
    charging = list(counter.statements)
    charging_commits = counter.commits
    counter.counting = False
    # Today's shape, as a ceiling: intake is two statements per order (insert + NOTIFY), the
    # executor a fixed six statements in two commits per batch whatever its size.
    assert len(intake) <= 2 * BATCH, intake
    assert len(charging) <= 6, charging
    assert charging_commits <= 2

    order_ids = [uuid.UUID(e.aggregate_id) for e in envelopes]
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(payments.c.status, func.count(payment_attempts.c.id))
                .join(payment_attempts, payment_attempts.c.payment_id == payments.c.id)
                .where(payments.c.order_id.in_(order_ids))
                .group_by(payments.c.id)
            )
        ).all()
        events = (
            await session.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.key.in_([str(o) for o in order_ids]))
            )
        ).scalar_one()
    assert sorted(rows) == [("succeeded", 1)] * BATCH
    assert events == BATCH
