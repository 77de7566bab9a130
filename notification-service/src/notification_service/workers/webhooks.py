"""The merchant webhook sender on the shared worker loop: POSTs due deliveries signed.

A pass leases due deliveries in a short transaction (`FOR UPDATE SKIP LOCKED`) and starts their
POSTs, outside any transaction, with at most `webhook_concurrency` in flight and at most
`webhook_per_endpoint_concurrency` to any one endpoint, so a receiver that hangs for the full
timeout holds a few slots and never the rest; the pass does not wait for them (a finished send
wakes the loop for the slot it freed). Each outcome (attempt row, new status, next attempt on
the schedule) is written in a transaction of its own. A process killed mid-send leaves the lease
to run out; the delivery is then sent again with the same `webhook-id` (see the README).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notification_service.domain import webhooks as domain
from notification_service.domain.errors import InvalidWebhookUrl
from notification_service.domain.status import WebhookDeliveryStatus
from notification_service.domain.webhook_urls import UrlPolicy, check_webhook_url, pin_to_address
from notification_service.settings import Settings
from notification_service.store import webhooks as store
from notification_service.store.tables import (
    WebhookDelivery,
    WebhookEndpoint,
)
from notification_service.wakeups import WEBHOOKS_DUE
from paygate_common.crypto import DecryptionError, EnvelopeCipher
from paygate_common.db import unit_of_work
from paygate_common.logging import mask
from paygate_common.worker import Worker, describe_error

log = logging.getLogger("notification_service.workers.webhooks")

WEBHOOK_ATTEMPTS = Counter(
    "paygate_webhook_delivery_attempts_total",
    "Merchant webhook POSTs by outcome (delivered, failed, gone)",
    ["outcome"],
)
WEBHOOK_FINAL = Counter(
    "paygate_webhook_deliveries_final_total",
    "Merchant webhook deliveries that reached a final status (succeeded, failed)",
    ["status"],
)
USER_AGENT = "paygate-webhooks/1"


def url_policy(settings: Settings) -> UrlPolicy:
    return UrlPolicy(
        require_https=settings.webhook_https_required,
        allow_private=settings.webhook_private_targets_allowed,
    )


class WebhookSender:
    """`run_pass()` starts what is due; `worker()` runs it on the shared loop (LISTEN + timer)."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: EnvelopeCipher,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.cipher = cipher
        self.policy = url_policy(settings)
        self.delays = settings.webhook_retry_delays
        self.client = client or httpx.AsyncClient(
            follow_redirects=False,  # a redirect is an answer other than 2xx, not a new target
            trust_env=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency),
        )
        self._worker: Worker | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_endpoint: Tally[uuid.UUID] = Tally()

    def worker(self, engine: AsyncEngine | None) -> Worker:
        self._worker = _DrainingWorker(
            self,
            "webhook-sender",
            self.run_pass,
            interval=self.settings.webhook_poll_interval_seconds,
            batch_size=self.settings.webhook_concurrency,
            engine=engine,
            channel=WEBHOOKS_DUE if engine is not None else None,
        )
        return self._worker

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run_pass(self) -> int:
        """Lease as many due deliveries as there are free slots and start sending them."""
        free = self.settings.webhook_concurrency - len(self._in_flight)
        if free <= 0:
            return 0  # a finished send wakes the loop
        return await self.start_due(free)

    async def drain(self) -> None:
        """Let sends already on the wire finish and be recorded; the rest wait for their lease."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self.settings.webhook_timeout_seconds)

    async def start_due(self, free: int) -> int:
        """Lease up to `free` due deliveries and start sending them; returns how many."""
        cap = self.settings.webhook_per_endpoint_concurrency
        busy = {e for e, n in self._per_endpoint.items() if n >= cap}
        async with unit_of_work(self.sessionmaker) as session:
            candidates = await store.lock_due(session, limit=free * 2, busy_endpoints=busy)
            picked: list[uuid.UUID] = []
            room = Tally({e: cap - n for e, n in self._per_endpoint.items()})
            for delivery_id, endpoint_id in candidates:
                if len(picked) >= free:
                    break
                if room.get(endpoint_id, cap) <= 0:
                    continue  # stays locked until commit, then due for a later pass
                room[endpoint_id] = room.get(endpoint_id, cap) - 1
                picked.append(delivery_id)
            leased = await store.lease(
                session, picked, lease_seconds=self.settings.webhook_lease_seconds
            )
        for delivery, endpoint in leased:
            self._per_endpoint[endpoint.id] += 1
            task = asyncio.create_task(self._attempt(delivery, endpoint))
            self._in_flight.add(task)
            task.add_done_callback(self._done(endpoint.id))
        return len(leased)

    def _done(self, endpoint_id: uuid.UUID) -> Callable[[asyncio.Task[None]], None]:
        def callback(task: asyncio.Task[None]) -> None:
            self._in_flight.discard(task)
            self._per_endpoint[endpoint_id] -= 1
            if self._per_endpoint[endpoint_id] <= 0:
                del self._per_endpoint[endpoint_id]
            if self._worker is not None:
                self._worker.wake()  # a slot is free

        return callback

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> None:
        try:
            await self._attempt_unguarded(delivery, endpoint)
        except Exception:  # the lease runs out and the delivery is tried again
            log.exception("webhook delivery %s: recording the attempt failed", delivery.id)

    async def _attempt_unguarded(
        self, delivery: WebhookDelivery, endpoint: WebhookEndpoint
    ) -> None:
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            # The lookup counts against the timeout too: the whole attempt stays inside the lease.
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                # DNS may have changed since the URL was saved; connect to what was checked now.
                addresses = await check_webhook_url(endpoint.url, self.policy)
                status_code, excerpt, retry_after_header = await self._post(
                    delivery, endpoint, addresses[0] if addresses else None
                )
            retry_after = domain.parse_retry_after(retry_after_header, datetime.now(UTC))
        except InvalidWebhookUrl as exc:
            error = f"refused target: {exc.detail or exc}"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = describe_error(exc)
        except DecryptionError as exc:  # a key removed too early: an attempt, loudly logged
            log.error("webhook delivery %s: signing secret does not open: %s", delivery.id, exc)
            error = "the signing secret could not be opened (encryption key missing)"
        duration_ms = int((time.monotonic() - clock) * 1000)
        await self._record(
            delivery,
            endpoint,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            excerpt=excerpt,
            error=error,
            retry_after=retry_after,
        )

    async def _post(
        self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, address: str | None
    ) -> tuple[int, str, str | None]:
        now = datetime.now(UTC)
        msg_id = domain.message_id(delivery.id)
        signature = domain.signature_header(
            domain.signing_secrets(self.cipher, endpoint, now),
            message_id=msg_id,
            timestamp=now,
            body=delivery.body,
        )
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        target_url, extensions = endpoint.url, {}
        if address is not None:
            # Pinned: no second lookup that a rebinding DNS server could answer differently.
            pinned = pin_to_address(endpoint.url, address)
            target_url, headers["host"] = pinned.url, pinned.host_header
            if pinned.sni_hostname:
                extensions["sni_hostname"] = pinned.sni_hostname
        limit = self.settings.webhook_response_excerpt_bytes
        # The whole exchange, not each read, is bounded: a trickling receiver gets no longer.
        async with asyncio.timeout(self.settings.webhook_timeout_seconds):
            async with self.client.stream(
                "POST",
                target_url,
                content=delivery.body.encode(),
                headers=headers,
                timeout=self.settings.webhook_timeout_seconds,
                extensions=extensions,
            ) as response:
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= limit:
                        break
                excerpt = mask(head[:limit].decode("utf-8", errors="replace"))
                return response.status_code, excerpt, response.headers.get("retry-after")

    async def _record(
        self,
        delivery: WebhookDelivery,
        endpoint: WebhookEndpoint,
        *,
        started_at: datetime,
        duration_ms: int,
        status_code: int | None,
        excerpt: str | None,
        error: str | None,
        retry_after: float | None,
    ) -> None:
        manual = delivery.manual_retry_requested
        outcome = domain.outcome_of(status_code)
        delay = domain.next_delay(
            self.delays,
            delivery.scheduled_attempts,
            retry_after,
            self.settings.webhook_max_retry_after_seconds,
        )
        current = WebhookDeliveryStatus(delivery.status)
        status = domain.status_after(
            current, outcome, manual=manual, attempts_left=delay is not None
        )
        next_attempt_at = (
            datetime.now(UTC) + timedelta(seconds=delay)
            if status is WebhookDeliveryStatus.RETRYING and delay is not None
            else None
        )
        if error is None and outcome is not domain.AttemptOutcome.DELIVERED:
            error = f"HTTP {status_code}"
        async with unit_of_work(self.sessionmaker) as session:
            await store.record_attempt(
                session,
                delivery_id=delivery.id,
                attempt_no=delivery.attempts,
                manual=manual,
                url=endpoint.url,
                response_status=status_code,
                response_body=excerpt,
                error=error,
                duration_ms=duration_ms,
                started_at=started_at,
            )
            held = await store.finish_attempt(
                session,
                delivery,
                manual=manual,
                status=status,
                next_attempt_at=next_attempt_at,
                response_status=status_code,
                response_body=excerpt,
                error=error,
            )
            if outcome is domain.AttemptOutcome.GONE:
                await store.disable_endpoint(session, endpoint.id, "the endpoint answered 410 Gone")
        WEBHOOK_ATTEMPTS.labels(outcome.value).inc()
        if (
            held
            and status is not current
            and status
            in (
                WebhookDeliveryStatus.SUCCEEDED,
                WebhookDeliveryStatus.FAILED,
            )
        ):
            WEBHOOK_FINAL.labels(status.value).inc()
        if not held:
            log.warning("webhook delivery %s was reclaimed while sending", delivery.id)
        log.info(
            "webhook delivery %s attempt %d: %s → %s",
            delivery.id,
            delivery.attempts,
            status_code if status_code is not None else error,
            status.value,
        )


class _DrainingWorker(Worker):
    """The shared loop, and on the way out the sends it started get their outcome recorded."""

    def __init__(self, sender: WebhookSender, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sender = sender

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.sender.drain()
