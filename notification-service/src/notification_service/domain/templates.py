"""Operator-edited message templates: validated before saving, versioned, never fatal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.domain.errors import InvalidTemplate, UnknownTemplate
from notification_service.domain.rendering import (
    CHANNEL_PARTS,
    MAX_PART_CHARS,
    NOTIFIED_EVENT_TYPES,
    TEMPLATE_VARIABLES,
    builtin_parts,
    render_parts,
    template_environment,
)
from notification_service.store import templates as store
from notification_service.store.tables import MessageTemplate

ALLOWED_PARENTS = frozenset({"_layout.html.j2"})

# Test renders: a customer with a name, a long failure message and an action URL, and one
# without any of those (the branches a template may take).
_SAMPLE_CONTEXTS = (
    {
        "name": "Ada Lovelace",
        "amount": "19.99 USD",
        "order_id": str(uuid.UUID(int=1)),
        "payment_id": str(uuid.UUID(int=2)),
        "failure_message": "Your card was declined.",
        "action_url": "https://checkout.example.com/3ds",
        "event_type": "payment.succeeded",
    },
    {
        "name": "there",
        "amount": "0.00 USD",
        "order_id": "-",
        "payment_id": str(uuid.UUID(int=3)),
        "failure_message": "Your payment was declined. No money was taken.",
        "action_url": None,
        "event_type": "payment.failed",
    },
)


@dataclass(frozen=True)
class TemplateView:
    event_type: str
    channel: str
    source: str  # builtin | custom
    version: int
    parts: dict[str, str]
    variables: tuple[str, ...]


def _check_known(event_type: str, channel: str) -> None:
    if event_type not in NOTIFIED_EVENT_TYPES or channel not in CHANNEL_PARTS:
        raise UnknownTemplate(
            f"No template {event_type}/{channel}; event types: {sorted(NOTIFIED_EVENT_TYPES)}, "
            f"channels: {sorted(CHANNEL_PARTS)}"
        )


def validate_parts(channel: str, parts: dict[str, str]) -> None:
    """Syntax, only known variables and parents, a test render: 422 with every problem found."""
    required = set(CHANNEL_PARTS[channel])
    problems: list[str] = []
    if set(parts) != required:
        problems.append(f"a {channel} template has exactly the parts {sorted(required)}")
    for part, source in parts.items():
        if part not in required:
            continue
        if len(source) > MAX_PART_CHARS[part]:
            problems.append(f"{part}: longer than {MAX_PART_CHARS[part]} characters")
            continue
        try:
            ast = template_environment(html=part == "html").parse(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{part}: syntax error on line {exc.lineno}: {exc.message}")
            continue
        unknown = meta.find_undeclared_variables(ast) - TEMPLATE_VARIABLES
        if unknown:
            problems.append(
                f"{part}: unknown variables {sorted(unknown)}; known: {sorted(TEMPLATE_VARIABLES)}"
            )
        for parent in meta.find_referenced_templates(ast):
            if parent not in ALLOWED_PARENTS:
                problems.append(f"{part}: may only extend or include {sorted(ALLOWED_PARENTS)}")
    if not problems:
        for context in _SAMPLE_CONTEXTS:
            try:
                rendered = render_parts(parts, context)
            except Exception as exc:  # a sandbox SecurityError, a filter on the wrong type, ...
                problems.append(f"test render failed: {type(exc).__name__}: {exc}")
                break
            if any(not rendered[p].strip() for p in ("subject", "title", "text") if p in rendered):
                problems.append("test render produced an empty subject, title or text")
                break
    if problems:
        raise InvalidTemplate("; ".join(problems), problems=problems)


async def list_templates(*, session: AsyncSession) -> list[TemplateView]:
    saved = await store.latest_templates(session)
    views: list[TemplateView] = []
    for event_type in sorted(NOTIFIED_EVENT_TYPES):
        for channel in CHANNEL_PARTS:
            row = saved.get((event_type, channel))
            views.append(
                TemplateView(
                    event_type=event_type,
                    channel=channel,
                    source="custom" if row else "builtin",
                    version=row.version if row else 0,
                    parts=dict(row.parts) if row else builtin_parts(event_type, channel),
                    variables=tuple(sorted(TEMPLATE_VARIABLES)),
                )
            )
    return views


async def save_template(
    *,
    session: AsyncSession,
    event_type: str,
    channel: str,
    parts: dict[str, str],
    actor_id: uuid.UUID | None,
) -> MessageTemplate:
    _check_known(event_type, channel)
    validate_parts(channel, parts)
    return await store.save_version(
        session, event_type=event_type, channel=channel, parts=parts, created_by=actor_id
    )


async def template_history(
    *, session: AsyncSession, event_type: str, channel: str
) -> Sequence[MessageTemplate]:
    _check_known(event_type, channel)
    return await store.versions(session, event_type, channel)
