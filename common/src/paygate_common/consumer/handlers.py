"""What a consumer applies events with: handler types, the per-event adapter, TransientError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.events.envelope import EventEnvelope
from paygate_common.logging import request_id_var

Handler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
# A handler of a whole consumed batch: the new (not yet applied) envelopes, in partition order.
BatchHandler = Callable[[AsyncSession, Sequence[EventEnvelope]], Awaitable[None]]


class TransientError(Exception):
    """Raised by a handler when a dependency is down (e.g. user-service unreachable).

    The event is retried with capped backoff for as long as it takes: never dead-lettered,
    and its partition does not move past it.
    """


def per_event(handler: Handler) -> BatchHandler:
    """A batch handler that applies each envelope with `handler`, under its correlation id."""

    async def handle(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
        for envelope in envelopes:
            token = request_id_var.set(envelope.correlation_id or str(envelope.event_id))
            try:
                await handler(session, envelope)
            finally:
                request_id_var.reset(token)

    return handle


def single_event(batch_handler: BatchHandler) -> Handler:
    """A per-event handler that hands `batch_handler` batches of one (the event-by-event path)."""

    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        await batch_handler(session, (envelope,))

    return handle
