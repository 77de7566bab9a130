"""notification-service settings: SMTP, delivery retries and the recipient cache."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from paygate_common.settings import ServiceSettings


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
