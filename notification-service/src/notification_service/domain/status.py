"""The two state machines: a customer notification's and a merchant webhook delivery's."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class NotificationStatus(StrEnum):
    """queued → sending → sent; a failed attempt → failed (retried when due) → … → dead_lettered."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    # Nothing to send to (no phone on the profile, no push subscription): not a failure.
    SKIPPED = "skipped"


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


N = NotificationStatus
W = WebhookDeliveryStatus

# The one table for notifications. `sending` → `sending` is a claim whose sender died (its lease
# ran out); `sending` → `queued`/`failed` hands an attempt back (user-service did not answer);
# `dead_lettered` → `queued` is an operator's replay. `sent` and `skipped` are final.
NOTIFICATION_TRANSITIONS: dict[NotificationStatus, frozenset[NotificationStatus]] = {
    N.QUEUED: frozenset({N.SENDING}),
    N.FAILED: frozenset({N.SENDING}),
    N.SENDING: frozenset({N.SENDING, N.SENT, N.FAILED, N.DEAD_LETTERED, N.SKIPPED, N.QUEUED}),
    N.DEAD_LETTERED: frozenset({N.QUEUED}),
    N.SENT: frozenset(),
    N.SKIPPED: frozenset(),
}

# The one table for webhook deliveries. A manual retry may still deliver a `failed` one (or
# leave it failed); a delivered one stays delivered; `pending` → `pending` is a failed manual
# retry of a delivery whose first scheduled attempt has not happened yet.
WEBHOOK_TRANSITIONS: dict[WebhookDeliveryStatus, frozenset[WebhookDeliveryStatus]] = {
    W.PENDING: frozenset({W.RETRYING, W.SUCCEEDED, W.FAILED, W.PENDING}),
    W.RETRYING: frozenset({W.RETRYING, W.SUCCEEDED, W.FAILED}),
    W.FAILED: frozenset({W.SUCCEEDED, W.FAILED}),
    W.SUCCEEDED: frozenset({W.SUCCEEDED}),
}

# Where the workers look for work: a notification still to send, a delivery on its schedule.
NOTIFICATION_DUE = frozenset(
    state for state, targets in NOTIFICATION_TRANSITIONS.items() if N.SENDING in targets
)
WEBHOOK_SCHEDULED = frozenset({W.PENDING, W.RETRYING})

S = TypeVar("S", NotificationStatus, WebhookDeliveryStatus)


def allowed_from(table: dict[S, frozenset[S]], target: S) -> frozenset[S]:
    """The states a row may be in to move to `target`: the guard of the UPDATE that moves it."""
    return frozenset(state for state, targets in table.items() if target in targets)


def check_transition(table: dict[S, frozenset[S]], current: S, target: S) -> S:
    if target not in table[current]:
        raise ValueError(f"cannot go from {current} to {target}")
    return target


def sql_in(enum: type[S], states: frozenset[S] | None = None) -> str:
    """`'a', 'b'` for a CHECK constraint or a partial index, from the enum, never retyped."""
    return ", ".join(f"'{s.value}'" for s in enum if states is None or s in states)
