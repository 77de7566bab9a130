"""Kafka topic names: one place, so producers, consumers and the launcher agree."""

ORDER_CREATE = "order.create"
ORDER_EVENT = "order.event"
PAYMENT_EVENT = "payment.event"
USER_REGISTERED = "user.registered"
CONFIG_CHANGED = "config.changed"
AUDIT_EVENT = "audit.event"
NOTIFICATION_DLQ = "notification.dlq"
PAYMENT_DLQ = "payment.dlq"
ORDER_DLQ = "order.dlq"
TRANSACTION_DLQ = "transaction.dlq"
AUDIT_DLQ = "audit.dlq"

# Topics that carry domain events (every one is ingested by the audit service).
EVENT_TOPICS = (
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    USER_REGISTERED,
    CONFIG_CHANGED,
    AUDIT_EVENT,
)
DLQ_TOPICS = (NOTIFICATION_DLQ, PAYMENT_DLQ, ORDER_DLQ, TRANSACTION_DLQ, AUDIT_DLQ)
ALL_TOPICS = EVENT_TOPICS + DLQ_TOPICS
