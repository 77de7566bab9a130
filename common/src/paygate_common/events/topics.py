"""Kafka topic names: one place, so producers, consumers and the launcher agree."""

ORDER_CREATE = "order.create"
ORDER_EVENT = "order.event"
PAYMENT_EVENT = "payment.event"
USER_REGISTERED = "user.registered"
NOTIFICATION_DLQ = "notification.dlq"
PAYMENT_DLQ = "payment.dlq"
ORDER_DLQ = "order.dlq"

ALL_TOPICS = (
    ORDER_CREATE,
    ORDER_EVENT,
    PAYMENT_EVENT,
    USER_REGISTERED,
    NOTIFICATION_DLQ,
    PAYMENT_DLQ,
    ORDER_DLQ,
)
