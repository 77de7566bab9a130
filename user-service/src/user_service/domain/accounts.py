"""Accounts: registration (`user.registered`), sign-in, profile, administration, bootstrap admin."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from paygate_common.audit import Actor, record_audit
from paygate_common.events import USER_REGISTERED, UserRegistered, new_event
from paygate_common.events.models import AuditOutcome
from paygate_common.outbox import add_event
from paygate_common.pagination import decode_cursor, split_page
from user_service.domain import sessions
from user_service.domain.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidCredentials,
    UserNotFound,
)
from user_service.domain.passwords import PasswordHasher, enforce_policy
from user_service.domain.throttling import SigninThrottle
from user_service.store import users
from user_service.store.tables import User

log = logging.getLogger("user_service.accounts")

Role = Literal["customer", "merchant", "admin"]
PRODUCER = "user-service"


def normalise_email(email: str) -> str:
    """One spelling per mailbox: surrounding space dropped, the whole address lowercased.

    Lowercasing the local part too is stricter than RFC 5321 but matches every mainstream
    provider and means `Ann@x.io` and `ann@x.io` can never be two accounts.
    """
    return email.strip().lower()


async def register(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str,
    role: Role = "customer",
) -> User:
    """Create an account and its `user.registered` outbox row in the caller's transaction."""
    email = normalise_email(email)
    enforce_policy(password, email=email)
    # A pre-check saves hashing for the common duplicate; the unique index settles races.
    if await users.get_by_email(session, email) is not None:
        raise EmailTaken("An account with this email already exists")
    password_hash = await hasher.hash(password)
    try:
        user = await users.insert(
            session, email=email, full_name=full_name, role=role, password_hash=password_hash
        )
    except users.DuplicateEmail:
        raise EmailTaken("An account with this email already exists") from None
    event = new_event(
        UserRegistered(user_id=user.id, email=user.email, full_name=user.full_name, role=user.role),
        producer=PRODUCER,
        aggregate_id=str(user.id),
    )
    await add_event(session, event, topic=USER_REGISTERED)
    log.info("account registered", extra={"user_id": str(user.id), "role": user.role})
    return user


async def authenticate(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    throttle: SigninThrottle,
    email: str,
    password: str,
    client_ip: str,
    actor: Actor,
) -> User:
    """The account for a correct email and password; `InvalidCredentials` otherwise.

    Unknown email and wrong password take the same path through Argon2, so neither the answer
    nor its timing tells which emails have accounts. A disabled account is told so (403) only
    after the right password. Failures are audited as `auth.signin_failed`; both errors keep
    what was written, so that audit row is committed with the refusal.
    """
    email = normalise_email(email)
    await throttle.ensure_allowed(email=email, client_ip=client_ip)
    user = await users.get_by_email(session, email)
    if not await hasher.verify(user.password_hash if user else None, password) or user is None:
        await throttle.record_failure(email=email, client_ip=client_ip)
        log.info("sign-in failed", extra={"client_ip": client_ip})
        await _audit_signin_failed(session, user, actor, reason="invalid_credentials")
        raise InvalidCredentials("The email or password is wrong")
    if user.disabled:
        await _audit_signin_failed(session, user, actor, reason="account_disabled")
        raise AccountDisabled("This account is disabled")
    await throttle.record_success(email=email)
    if hasher.needs_rehash(user.password_hash):
        await users.set_password_hash(session, user.id, await hasher.hash(password))
    return user


async def _audit_user(
    session: AsyncSession,
    action: str,
    user_id: uuid.UUID,
    actor: Actor,
    details: dict[str, Any],
) -> None:
    """An `audit.event` about an account, in the caller's transaction."""
    await record_audit(
        session,
        producer=PRODUCER,
        action=action,
        entity_type="user",
        entity_id=user_id,
        actor=actor,
        details=details,
    )


async def _audit_signin_failed(
    session: AsyncSession, user: User | None, actor: Actor, *, reason: str
) -> None:
    await record_audit(
        session,
        producer=PRODUCER,
        action="auth.signin_failed",
        entity_type="user",
        # The account when the email has one; never the email or the password itself.
        entity_id=user.id if user else None,
        actor=Actor(actor_id=user.id if user else None, source_ip=actor.source_ip),
        outcome=AuditOutcome.DENIED if reason == "account_disabled" else AuditOutcome.FAILED,
        details={"reason": reason},
    )


async def get_user(*, session: AsyncSession, user_id: uuid.UUID, for_update: bool = False) -> User:
    user = await users.get_by_id(session, user_id, for_update=for_update)
    if user is None:
        raise UserNotFound("No such user")
    return user


async def update_profile(
    *, session: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any], actor: Actor
) -> User:
    """Apply `{full_name?, phone?}` (validated at the edge); audited as `user.updated`.

    The audit names the changed fields, not their values (a phone number is personal data).
    """
    user = await get_user(session=session, user_id=user_id, for_update=True)
    changed = {k: v for k, v in changes.items() if getattr(user, k) != v}
    if changed:
        await users.update_profile(session, user_id, changed)
        await session.refresh(user)  # updated_at is set by the database
        await _audit_user(session, "user.updated", user_id, actor, {"fields": sorted(changed)})
    return user


@dataclass(frozen=True)
class UserPage:
    items: list[User]
    next_cursor: str | None


async def search_users(
    *,
    session: AsyncSession,
    email_contains: str | None,
    role: Role | None,
    disabled: bool | None,
    limit: int,
    cursor: str | None,
) -> UserPage:
    """For admin-service: accounts newest first, filtered by email substring, role, status."""
    after = decode_cursor(cursor) if cursor else None
    rows = await users.search(
        session,
        email_contains=email_contains,
        role=role,
        disabled=disabled,
        limit=limit + 1,
        after=after,
    )
    items, next_cursor = split_page(rows, limit)
    return UserPage(items=items, next_cursor=next_cursor)


async def administer_user(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    role: Role | None,
    disabled: bool | None,
    actor: Actor,
) -> User:
    """An operator's change of role and/or status, each audited.

    Disabling revokes every session at once (no refresh), and the user's API keys stop
    resolving, so the gateway refuses them within its cache time (5 s). Access tokens already
    issued live out their (at most 15 minute) lifetime.
    """
    user = await get_user(session=session, user_id=user_id, for_update=True)
    # Read before the UPDATE, which also refreshes the loaded object.
    old_role, old_disabled = user.role, user.disabled
    new_role = role if role is not None else old_role
    new_disabled = disabled if disabled is not None else old_disabled
    if new_role == old_role and new_disabled == old_disabled:
        return user
    await users.set_role_and_status(session, user_id, role=new_role, disabled=new_disabled)
    if new_role != old_role:
        await _audit_user(
            session, "user.role_changed", user_id, actor, {"from": old_role, "to": new_role}
        )
    if new_disabled != old_disabled:
        if new_disabled:
            revoked = await sessions.revoke_all(
                session=session, user_id=user_id, reason="account_disabled", actor=actor
            )
            await _audit_user(
                session, "user.disabled", user_id, actor, {"sessions_revoked": revoked}
            )
        else:
            await _audit_user(
                session, "user.updated", user_id, actor, {"fields": ["disabled"], "disabled": False}
            )
    await session.refresh(user)
    log.info(
        "account administered",
        extra={"user_id": str(user_id), "role": new_role, "disabled": new_disabled},
    )
    return user


async def ensure_bootstrap_admin(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str,
) -> uuid.UUID:
    """Create the operator's admin account, or make the existing one admin with this password.

    Idempotent: restarting with the same settings changes nothing (the hash is only replaced
    when the configured password no longer matches it). Raises `EmailTaken` when another
    replica created the account between our read and our insert: the caller retries in a new
    transaction, which then finds it.
    """
    email = normalise_email(email)
    enforce_policy(password, email=email)
    existing = await users.get_by_email(session, email)
    if existing is None:
        user = await register(
            session=session,
            hasher=hasher,
            email=email,
            password=password,
            full_name=full_name,
            role="admin",
        )
        log.info("bootstrap admin created", extra={"user_id": str(user.id)})
        return user.id
    password_hash = existing.password_hash
    if not await hasher.verify(password_hash, password):
        password_hash = await hasher.hash(password)
    if existing.role != "admin" or password_hash != existing.password_hash:
        await users.make_admin(session, existing.id, password_hash=password_hash)
        log.info("bootstrap admin updated", extra={"user_id": str(existing.id)})
    return existing.id
