"""paygate's local stack: real PostgreSQL, Redis, Kafka-protocol broker, Stripe stand-in, SMTP sink.

The same components back `make run` (``python -m paygate_devstack run``) and the pytest
fixtures in :mod:`paygate_devstack.pytest_plugin`.
"""

from __future__ import annotations

from paygate_common.events.topics import ALL_TOPICS

# Every Kafka topic the services use (the shared library's topic constants are the contract);
# `make run` and the `kafka_broker` fixture create them all.
TOPICS: tuple[str, ...] = ALL_TOPICS
TOPIC_PARTITIONS = 3

__all__ = ["TOPICS", "TOPIC_PARTITIONS"]
