"""Every connection of the service acts as the insert-only writer role (`SET ROLE`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


def act_as_role(engine: AsyncEngine, role: str) -> None:
    """`SET ROLE <role>` on each new connection, before the pool hands it out.

    When the connecting user is a superuser (the local stack), this is what keeps the service
    itself from updating or deleting audit rows: the role has SELECT and INSERT only.
    """
    if not role:
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        # Straight on the asyncpg connection, outside any transaction: a SET inside one would
        # be undone by the pool's rollback. The name is checked by the settings pattern (SET
        # ROLE takes no bind parameter).
        dbapi_connection.run_async(lambda conn: conn.execute(f'SET ROLE "{role}"'))
