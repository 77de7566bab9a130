"""notification-service settings: SMTP, SMS, Web Push, merchant webhooks, retries, encryption."""

from __future__ import annotations

import json
import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from paygate_common.crypto import EnvelopeCipher
from paygate_common.settings import DEV_SECRET_MARKER, ServiceSettings

# A development key-encryption key: its id carries the marker, so production refuses it.
_DEV_KEY_ID = f"{DEV_SECRET_MARKER}-1"
DEFAULT_ENCRYPTION_KEYS = json.dumps({_DEV_KEY_ID: "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="})
DEFAULT_WEBHOOK_RETRY_SCHEDULE = "0s,1m,5m,30m,2h,5h,10h,10h"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"0s,1m,5m"` → `(0, 60, 300)`: the delay before each attempt, the first for the first."""
    delays: list[float] = []
    for part in text.split(","):
        match = _DURATION.match(part)
        if match is None:
            raise ValueError(f"not a duration: {part!r} (use e.g. 0s, 30s, 5m, 2h)")
        delays.append(float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not delays:
        raise ValueError("the retry schedule needs at least one entry")
    return tuple(delays)


class Settings(ServiceSettings):
    """`NOTIFICATION_SERVICE_<FIELD>` wins; `SMTP_HOST`/`SMTP_PORT` unprefixed work as well."""

    registry_name: ClassVar[str] = "notification"

    # The local SMTP sink by default (`python -m paygate_devstack run` starts one there).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 51025
    smtp_from_address: str = "paygate <no-reply@paygate.local>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # The name we give in EHLO. Without it aiosmtplib calls socket.getfqdn() for every message,
    # a reverse-DNS lookup in a thread that dominated the service's CPU under load.
    smtp_local_hostname: str = "paygate.local"
    # Kept-open SMTP connections (one per message in flight at most: the sender runs 4 at a
    # time); a connection idle longer than `smtp_idle_seconds` is closed rather than reused
    # (servers drop idle clients, Postfix after 300 s), and one is retired after
    # `smtp_messages_per_connection` messages (some servers cap a session).
    smtp_pool_size: int = Field(default=4, ge=1)
    smtp_idle_seconds: float = Field(default=30.0, gt=0)
    smtp_messages_per_connection: int = Field(default=100, ge=1)

    # Delivery: after `max_attempts` failed sends a notification is dead-lettered.
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=2.0, ge=0)
    backoff_max_seconds: float = Field(default=300.0, ge=0)
    sender_poll_interval_seconds: float = Field(default=1.0, gt=0)
    sender_batch_size: int = Field(default=20, ge=1, le=500)
    # A row left in `sending` this long (the process died mid-send) is claimed again; the
    # stable Message-ID lets the recipient's side spot the possible duplicate.
    sending_lease_seconds: float = Field(default=300.0, gt=0)
    sender_enabled: bool = True

    contact_cache_ttl_seconds: int = Field(default=300, ge=1)

    # Retries of the payment.event consumer before the event goes to notification.dlq.
    consumer_max_attempts: int = Field(default=5, ge=1)
    # user-service not answering is not the notification's fault: the attempt is handed back
    # and the row waits this long, for as long as the outage lasts.
    contact_retry_seconds: float = Field(default=5.0, gt=0)

    # SMS over an HTTP provider API in Twilio's Messages shape (devstack's sink by default).
    sms_api_base: str = "http://127.0.0.1:51026"
    sms_account_sid: str = "AC00000000000000000000000000000000"
    sms_auth_token: SecretStr = SecretStr(f"{DEV_SECRET_MARKER}-sms-auth-token")
    sms_from_number: str = "+15005550006"
    sms_timeout_seconds: float = Field(default=10.0, gt=0)

    # Web Push (RFC 8030/8291/8292). The VAPID key is a PEM or base64url raw P-256 private key;
    # empty outside production means an ephemeral key per process.
    vapid_private_key: SecretStr | None = None
    vapid_subject: str = "mailto:ops@example.com"
    push_ttl_seconds: int = Field(default=86400, ge=0)
    push_timeout_seconds: float = Field(default=10.0, gt=0)

    # Merchant webhooks out (Standard Webhooks).
    webhook_retry_schedule: str = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    # A delivery claimed by a process that died is claimed again after this (> the timeout).
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_concurrency: int = Field(default=32, ge=1, le=512)
    # At most this many sends in flight per endpoint: a slow one cannot take every slot.
    webhook_per_endpoint_concurrency: int = Field(default=4, ge=1)
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_worker_enabled: bool = True
    # How long the previous signing secret keeps signing after a rotation.
    webhook_secret_overlap_seconds: int = Field(default=86400, ge=0)
    webhook_max_retry_after_seconds: float = Field(default=86400.0, ge=0)
    webhook_response_excerpt_bytes: int = Field(default=1024, ge=0, le=65536)
    # Production: https only, and no target that resolves to loopback, private, link-local or
    # metadata addresses. Unset = decided by `environment` (strict only in production).
    webhook_require_https: bool | None = None
    webhook_allow_private_targets: bool | None = None

    # Envelope encryption of secrets at rest: `{"key_id": "<base64 32 bytes>"}` and the active id.
    encryption_keys: SecretStr = SecretStr(DEFAULT_ENCRYPTION_KEYS)
    encryption_key_id: str = _DEV_KEY_ID

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _leases_outlast_a_send(self) -> Settings:
        # A lease that ran out while its send is still on the wire lets another replica send
        # the same message again: the one duplicate this design must never make by itself.
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("webhook_lease_seconds must be longer than webhook_timeout_seconds")
        longest = max(
            self.smtp_timeout_seconds, self.sms_timeout_seconds, self.push_timeout_seconds
        )
        if self.sending_lease_seconds <= longest:
            raise ValueError("sending_lease_seconds must be longer than every channel's timeout")
        return self

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return parse_schedule(self.webhook_retry_schedule)

    @property
    def webhook_https_required(self) -> bool:
        if self.webhook_require_https is None:
            return self.environment == "production"
        return self.webhook_require_https

    @property
    def webhook_private_targets_allowed(self) -> bool:
        if self.webhook_allow_private_targets is None:
            return self.environment != "production"
        return self.webhook_allow_private_targets

    def cipher(self) -> EnvelopeCipher:
        keys = json.loads(self.encryption_keys.get_secret_value())
        if not isinstance(keys, dict):
            raise ValueError("encryption_keys must be a JSON object of key id → base64 key")
        return EnvelopeCipher(keys, self.encryption_key_id)
