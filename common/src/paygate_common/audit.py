"""Emit `audit.event` the same way from every service: through the outbox, in the caller's unit of work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request

from paygate_common.auth.tokens import Principal
from paygate_common.events.envelope import new_event
from paygate_common.events.models import AuditAction, AuditOutcome
from paygate_common.events.topics import AUDIT_EVENT
from paygate_common.logging import current_request_id


@dataclass(frozen=True)
class Actor:
    """Who acted and from where; `Actor.of(request, principal)` in a route."""

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    source_ip: str | None = None

    @classmethod
    def of(cls, request: Request | None, principal: Principal | None = None) -> Actor:
        # The gateway sets X-Forwarded-For to the client's address (it never passes a client's
        # own header through); behind it `request.client` is the gateway.
        ip: str | None = None
        if request is not None:
            forwarded = request.headers.get("x-forwarded-for")
            if forwarded:
                ip = forwarded.split(",")[0].strip() or None
            elif request.client is not None:
                ip = request.client.host
        return cls(
            actor_id=principal.user_id if principal else None,
            actor_role=str(principal.role) if principal else None,
            source_ip=ip,
        )

    @classmethod
    def system(cls) -> Actor:
        """A worker or consumer acting on its own (an expiry, a sweep)."""
        return cls(actor_role="system")


async def record_audit(
    session: AsyncSession | AsyncConnection,
    *,
    producer: str,
    action: str,
    entity_type: str,
    entity_id: str | uuid.UUID | None = None,
    actor: Actor | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCEEDED,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one `audit.event` to the outbox in the caller's transaction.

    `action` is `<entity>.<verb>` (`api_key.created`). `details` must never hold a secret, a key
    or a password; the audit service masks what it stores as a second line of defence.
    """
    from paygate_common.outbox import add_event  # the outbox imports the auth-free layers only

    actor = actor or Actor()
    entity = str(entity_id) if entity_id is not None else None
    payload = AuditAction(
        action=action,
        outcome=outcome,
        actor_id=actor.actor_id,
        actor_role=actor.actor_role,
        entity_type=entity_type,
        entity_id=entity,
        source_ip=actor.source_ip,
        request_id=current_request_id(),
        details=details or {},
    )
    envelope = new_event(payload, producer=producer, aggregate_id=entity or entity_type)
    await add_event(session, envelope, topic=AUDIT_EVENT)
