"""The NOTIFY channels the two workers LISTEN on, and a once-per-transaction wake-up."""

from __future__ import annotations

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.worker import notify

# Every replica's sender wakes when any replica's transaction makes something due.
NOTIFICATIONS_DUE = "notifications_due"
WEBHOOKS_DUE = "webhooks_due"


async def wake_after_commit(session: AsyncSession, channel: str) -> None:
    """NOTIFY `channel` when the caller's transaction commits, at most once per transaction.

    A consumed batch may queue hundreds of rows; one NOTIFY is enough, and a statement per row
    would cost a round trip each.
    """
    key = f"notified:{channel}"
    if session.info.get(key):
        return
    await notify(session, channel)
    session.info[key] = True

    def forget(*_: object) -> None:
        session.info.pop(key, None)

    for name in ("after_commit", "after_rollback"):
        sa_event.listen(session.sync_session, name, forget, once=True)
