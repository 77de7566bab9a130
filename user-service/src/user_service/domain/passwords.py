"""Password policy and Argon2id hashing; hashing runs in a worker thread, off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher as Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from user_service.domain.errors import WeakPassword

MIN_LENGTH = 10
MAX_LENGTH = 128

# Argon2id with OWASP's first recommended configuration (m=19 MiB, t=2, p=1). It costs ~20-40 ms
# per hash on the 2-core machines we run on, so sign-in stays cheap enough that two cores can serve
# it, while an offline guess costs 19 MiB of memory. RFC 9106's "low memory" choice (64 MiB, t=3,
# p=4) would triple the cost and block both cores per sign-in. Hashes carry their parameters, so
# raising these later rehashes on the next successful sign-in (`needs_rehash`).
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1

# The worst offenders from public breach corpora that pass the length rule.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "0123456789",
        "0987654321",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "asdfghjkl;",
        "qwerty1234",
        "qwerty123456",
        "password12",
        "password123",
        "password1234",
        "password!",
        "passw0rd123",
        "iloveyou12",
        "abcdefghij",
        "abc1234567",
        "letmein123",
        "welcome123",
        "changeme123",
        "administrator",
        "admin12345",
        "superman123",
        "football123",
        "baseball123",
        "princess123",
        "sunshine123",
        "trustno1234",
        "monkey12345",
        "dragon12345",
        "starwars123",
        "qazwsxedcrfv",
        "zaq12wsxcde3",
    }
)


@dataclass(frozen=True)
class PolicyViolation:
    reason: str
    detail: str


def check_policy(password: str, *, email: str) -> PolicyViolation | None:
    """Length first, then what makes a long password trivially guessable."""
    if len(password) < MIN_LENGTH:
        return PolicyViolation("too_short", f"Use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        return PolicyViolation("too_long", f"Use at most {MAX_LENGTH} characters")
    lowered = password.lower()
    local_part = email.split("@", 1)[0].lower()
    if lowered == email.lower() or lowered == local_part:
        return PolicyViolation("matches_email", "The password must not be your email address")
    if len(set(password)) == 1:
        return PolicyViolation("repeated_character", "The password repeats one character")
    if lowered in COMMON_PASSWORDS:
        return PolicyViolation("too_common", "This password is one of the most common ones")
    return None


def enforce_policy(password: str, *, email: str) -> None:
    violation = check_policy(password, email=email)
    if violation is not None:
        raise WeakPassword(violation.detail, reason=violation.reason)


class PasswordHasher:
    """Argon2id hashing whose CPU-heavy work never runs on the event loop."""

    def __init__(
        self,
        *,
        time_cost: int = ARGON2_TIME_COST,
        memory_kib: int = ARGON2_MEMORY_KIB,
        parallelism: int = ARGON2_PARALLELISM,
    ) -> None:
        self._argon2 = Argon2(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against when the account does not exist, so "no such user" and "wrong
        # password" cost the same and timing does not reveal which emails have accounts.
        return self._argon2.hash("paygate-dummy-password-for-constant-time")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon2.hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash or self._dummy_hash, password) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True only for a real hash that matches; `None` burns the same time and says False."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    async def warm_up(self) -> None:
        """Compute the dummy hash at startup rather than on the first unknown-email sign-in."""
        await asyncio.to_thread(lambda: self._dummy_hash)
