"""Consumed topics: payment.event posts to the ledger, order.event and config.changed adjust it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.consumer import BatchHandler, Handler
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import (
    ConfigChanged,
    EventEnvelope,
    OrderCancelled,
    PaymentEvent,
    RefundEvent,
)
from paygate_common.events.topics import CONFIG_CHANGED, ORDER_EVENT, PAYMENT_EVENT, TRANSACTION_DLQ
from transaction_service.domain import limits
from transaction_service.domain.fees import validate_fees_config
from transaction_service.domain.ledger import (
    FEES_CONFIG_KEY,
    post_payment_event,
    post_payment_events,
    post_refund_event,
)
from transaction_service.settings import Settings
from transaction_service.store import config as config_store

log = logging.getLogger("transaction_service.events")

CONSUMER_NAME = "transaction-service"
CONFIG_VALIDATORS = {
    FEES_CONFIG_KEY: validate_fees_config,
    limits.LIMITS_CONFIG_KEY: limits.validate_limits_config,
}


def ledger_handler(settings: Settings) -> Handler:
    """One handler for the three topics; event types it does not know are skipped."""

    async def on_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        kind = envelope.event_type
        if kind.startswith("payment."):
            # A payload that does not parse raises: the runner retries, then dead-letters it.
            event = PaymentEvent.model_validate(envelope.payload)
            await post_payment_event(
                session=session,
                settings=settings,
                event=event,
                event_id=envelope.event_id,
                occurred_at=envelope.occurred_at,
            )
        elif kind.startswith("refund."):
            refund = RefundEvent.model_validate(envelope.payload)
            await post_refund_event(
                session=session,
                settings=settings,
                event=refund,
                event_id=envelope.event_id,
                occurred_at=envelope.occurred_at,
            )
        elif kind == OrderCancelled.event_type:
            cancelled = OrderCancelled.model_validate(envelope.payload)
            await limits.release(session=session, reference_ids=[cancelled.order_id])
        elif kind == ConfigChanged.event_type:
            change = ConfigChanged.model_validate(envelope.payload)
            validate = CONFIG_VALIDATORS.get(change.key)
            if validate is None:
                return
            validate(change.value)  # an invalid value raises and is dead-lettered, not applied
            if await config_store.save_config(
                session, key=change.key, version=change.config_version, value=change.value
            ):
                log.info("config %s version %d applied", change.key, change.config_version)

    return on_event


def ledger_batch_handler(settings: Settings, on_event: Handler | None = None) -> BatchHandler:
    """A consumed batch: each run of payment events posted with one statement per table.

    Anything else (refunds, cancelled orders, config changes) goes through `on_event` where it
    stands in the batch, so every event sees what the events before it did, as one by one.
    Both paths plan each payment event with the same rule (`plan_payment_event`); if anything
    raises, the runner applies the batch again event by event with `on_event`.
    """
    single = on_event or ledger_handler(settings)

    async def on_batch(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
        run: list[tuple[PaymentEvent, uuid.UUID, datetime]] = []
        for envelope in envelopes:
            if envelope.event_type.startswith("payment."):
                event = PaymentEvent.model_validate(envelope.payload)
                run.append((event, envelope.event_id, envelope.occurred_at))
                continue
            if run:
                await post_payment_events(session=session, settings=settings, events=run)
                run = []
            await single(session, envelope)
        if run:
            await post_payment_events(session=session, settings=settings, events=run)

    return on_batch


def ledger_consumer(settings: Settings) -> ConsumerSpec:
    on_event = ledger_handler(settings)
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT, ORDER_EVENT, CONFIG_CHANGED],
        handler=on_event,
        batch_handler=ledger_batch_handler(settings, on_event),
        dlq_topic=TRANSACTION_DLQ,
        max_attempts=settings.consumer_max_attempts,
        options={"batch_size": settings.consumer_batch_size},
    )


__all__ = ["CONSUMER_NAME", "ledger_batch_handler", "ledger_consumer", "ledger_handler"]
