"""Consumed topics: payment.event posts to the ledger, order.event and config.changed adjust it."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.consumer import Handler
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


def ledger_consumer(settings: Settings) -> ConsumerSpec:
    return ConsumerSpec(
        name=CONSUMER_NAME,
        topics=[PAYMENT_EVENT, ORDER_EVENT, CONFIG_CHANGED],
        handler=ledger_handler(settings),
        dlq_topic=TRANSACTION_DLQ,
        max_attempts=settings.consumer_max_attempts,
        options={"batch_size": settings.consumer_batch_size},
    )


__all__ = ["CONSUMER_NAME", "ledger_consumer", "ledger_handler"]
