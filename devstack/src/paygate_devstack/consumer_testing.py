"""A service's consumer fed whole batches in process: the real `ConsumerRunner`, without Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.consumer import ConsumerRunner
from paygate_common.eventing import ConsumerSpec
from paygate_common.events import EventEnvelope
from paygate_common.settings import ServiceSettings


class BatchFeeder:
    """Hands envelopes to a consumer's runner as ONE consumed batch (`ConsumerRunner._apply`).

    The runner does what it does with a `getmany` result: one transaction, one inbox insert,
    the spec's batch handler; event by event with a savepoint each when something raises
    (`fallbacks` counts those batches). `batched=False` leaves the batch handler out, so every
    event goes through the per-event handler: the reference the batch path must equal. Dead
    letters need a real `producer` (a test that expects none may leave it out).
    """

    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer | None = None,
        batched: bool = True,
        **options: Any,
    ) -> None:
        self.runner = ConsumerRunner(
            settings=settings,
            consumer_name=spec.name,
            topics=spec.topics,
            handler=spec.handler,
            batch_handler=spec.batch_handler if batched else None,
            sessionmaker=sessionmaker,
            producer=producer,  # type: ignore[arg-type,unused-ignore]  # None: no dead letters
            dlq_topic=spec.dlq_topic,
            **{"max_attempts": spec.max_attempts, **spec.options, **options},
        )
        self.fallbacks = 0
        self._offsets: dict[str, int] = {}
        apply_each = self.runner._apply_each

        async def counted(batch: Any) -> dict[TopicPartition, int]:
            self.fallbacks += 1
            return await apply_each(batch)

        self.runner._apply_each = counted  # type: ignore[method-assign]

    def batch_of(
        self, envelopes: Sequence[EventEnvelope], topic: str | Sequence[str] | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        """The records a `getmany` would return; `topic` per envelope (a list) or for all
        (default: the spec's first topic)."""
        if topic is None or isinstance(topic, str):
            topics = [topic or self.runner.topics[0]] * len(envelopes)
        else:
            topics = list(topic)
        batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = {}
        for envelope, name in zip(envelopes, topics, strict=True):
            value = envelope.to_bytes()
            offset = self._offsets.get(name, 0)
            self._offsets[name] = offset + 1
            record = ConsumerRecord(name, 0, offset, 0, 0, None, value, None, 0, len(value), [])
            batch.setdefault(TopicPartition(name, 0), []).append(record)
        return batch

    async def apply_batch(
        self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> None:
        """One consumed batch (from `batch_of`) through the runner."""
        offsets = await self.runner._apply(batch)
        # The runner moves every partition past the whole batch (no event was deferred).
        assert offsets == {tp: records[-1].offset + 1 for tp, records in batch.items()}

    async def apply(
        self, envelopes: Sequence[EventEnvelope], topic: str | Sequence[str] | None = None
    ) -> None:
        """`envelopes` as one consumed batch (see `batch_of` for `topic`)."""
        await self.apply_batch(self.batch_of(envelopes, topic))
