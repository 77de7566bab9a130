"""paygate's local stack: real PostgreSQL, Redis, Kafka-protocol broker, Stripe stand-in, SMTP sink.

The same components back `make run` (``python -m paygate_devstack run``) and the pytest
fixtures in :mod:`paygate_devstack.pytest_plugin`.
"""

from __future__ import annotations

# Every Kafka topic the services use; `make run` and the `kafka_broker` fixture create them all.
TOPICS: tuple[str, ...] = (
    "order.create",
    "order.status",
    "payment.event",
    "payment.dlq",
    "notification.dlq",
    "user.registered",
)
TOPIC_PARTITIONS = 3


def _with_shared_topics(base: tuple[str, ...]) -> tuple[str, ...]:
    # The shared library's topic constants are the contract; add any it declares.
    try:
        from paygate_common.events.topics import ALL_TOPICS
    except Exception:  # the shared library is optional for the launcher itself
        return base
    return tuple(dict.fromkeys((*base, *ALL_TOPICS)))


TOPICS = _with_shared_topics(TOPICS)

__all__ = ["TOPICS", "TOPIC_PARTITIONS"]
