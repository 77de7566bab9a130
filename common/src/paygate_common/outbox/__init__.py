"""Transactional outbox: event rows written with the state change, published later by a relay."""

from paygate_common.outbox.relay import OutboxRelay, OutboxRow, PublishFailure
from paygate_common.outbox.retention import RetentionPolicy, purge_processed
from paygate_common.outbox.schema import (
    INBOX_OUTCOMES,
    INBOX_TABLE,
    OUTBOX_STATES,
    OUTBOX_TABLE,
    create_outbox_tables,
    drop_outbox_tables,
    inbox_table,
    outbox_table,
    outbox_tables,
)
from paygate_common.outbox.writer import (
    CHANNEL_PREFIX,
    OUTBOX_COLUMNS,
    OUTBOX_NOTIFY,
    OUTBOX_VALUES,
    OutgoingEvent,
    add_event,
    add_events,
    channel_for_schema,
    outbox_params,
)

__all__ = [
    "CHANNEL_PREFIX",
    "INBOX_OUTCOMES",
    "INBOX_TABLE",
    "OUTBOX_COLUMNS",
    "OUTBOX_NOTIFY",
    "OUTBOX_STATES",
    "OUTBOX_TABLE",
    "OUTBOX_VALUES",
    "OutboxRelay",
    "OutboxRow",
    "OutgoingEvent",
    "PublishFailure",
    "RetentionPolicy",
    "add_event",
    "add_events",
    "channel_for_schema",
    "create_outbox_tables",
    "drop_outbox_tables",
    "inbox_table",
    "outbox_params",
    "outbox_table",
    "outbox_tables",
    "purge_processed",
]
