"""The FX quote state machine: open → redeemed, once; expiry is read from `expires_at`, never written."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class QuoteStatus(StrEnum):
    OPEN = "open"
    REDEEMED = "redeemed"


TRANSITIONS: dict[QuoteStatus, frozenset[QuoteStatus]] = {
    QuoteStatus.OPEN: frozenset({QuoteStatus.REDEEMED}),
    QuoteStatus.REDEEMED: frozenset(),
}


def allowed_from(target: QuoteStatus) -> frozenset[QuoteStatus]:
    """The states a quote may be in for a move to `target` (the UPDATE guard)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def public_status(status: str, expires_at: datetime, now: datetime) -> str:
    """`open`, `redeemed` or `expired` (an open quote past `expires_at`)."""
    if status == QuoteStatus.OPEN and now >= expires_at:
        return "expired"
    return status
