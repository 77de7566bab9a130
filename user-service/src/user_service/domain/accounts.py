"""Accounts: registration (with its `user.registered` event), sign-in and the bootstrap admin."""

from __future__ import annotations

import logging
import uuid
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paygate_common.db import unit_of_work
from paygate_common.events import USER_REGISTERED, UserRegistered, new_event
from paygate_common.outbox import add_event
from user_service.domain.errors import EmailTaken, InvalidCredentials, UserNotFound
from user_service.domain.passwords import PasswordHasher, enforce_policy
from user_service.domain.throttling import SigninThrottle
from user_service.store import users
from user_service.store.tables import User

log = logging.getLogger("user_service.accounts")

Role = Literal["customer", "admin"]
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
) -> User:
    """The account for a correct email and password; `InvalidCredentials` otherwise.

    Unknown email and wrong password take the same path through Argon2, so neither the answer
    nor its timing tells which emails have accounts.
    """
    email = normalise_email(email)
    await throttle.ensure_allowed(email=email, client_ip=client_ip)
    user = await users.get_by_email(session, email)
    if not await hasher.verify(user.password_hash if user else None, password) or user is None:
        await throttle.record_failure(email=email, client_ip=client_ip)
        log.info("sign-in failed", extra={"client_ip": client_ip})
        raise InvalidCredentials("The email or password is wrong")
    await throttle.record_success(email=email)
    if hasher.needs_rehash(user.password_hash):
        await users.set_password_hash(session, user.id, await hasher.hash(password))
    return user


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await users.get_by_id(session, user_id)
    if user is None:
        raise UserNotFound("No such user")
    return user


async def ensure_bootstrap_admin(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str,
) -> uuid.UUID:
    """Create the operator's admin account, or make the existing one admin with this password.

    Idempotent: restarting with the same settings changes nothing (the hash is only replaced
    when the configured password no longer matches it).
    """
    email = normalise_email(email)
    enforce_policy(password, email=email)
    for _ in range(2):  # a second replica may create it between our read and our insert
        async with unit_of_work(sessionmaker) as session:
            existing = await users.get_by_email(session, email)
            if existing is None:
                try:
                    user = await register(
                        session=session,
                        hasher=hasher,
                        email=email,
                        password=password,
                        full_name=full_name,
                        role="admin",
                    )
                except EmailTaken:
                    continue
                log.info("bootstrap admin created", extra={"user_id": str(user.id)})
                return user.id
            password_hash = existing.password_hash
            if not await hasher.verify(password_hash, password):
                password_hash = await hasher.hash(password)
            if existing.role != "admin" or password_hash != existing.password_hash:
                await users.make_admin(session, existing.id, password_hash=password_hash)
                log.info("bootstrap admin updated", extra={"user_id": str(existing.id)})
            return existing.id
    raise RuntimeError("could not create or update the bootstrap admin")
