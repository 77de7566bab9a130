"""The no-double-charge invariant under crashes: a lost attempt is reconciled, never re-sent blind.

These tests drive a `PaymentExecutor` by hand against a database of their own (the live service
of the other modules would otherwise pick the payments up), with localstripe as the provider.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from payment_tests_support import Stripe, UserServiceStandIn
from sqlalchemy import func, select, update

from paygate_common.db import create_engine, create_sessionmaker, unit_of_work
from paygate_common.events import OrderCreated
from paygate_common.http import ServiceClient
from paygate_devstack.events_testing import wait_for
from payment_service.connectors import ProviderUnavailable, build_connector
from payment_service.connectors.base import ProviderRequest
from payment_service.domain import payments as domain
from payment_service.domain import refunds
from payment_service.domain.payment_context import UserDirectory
from payment_service.settings import Settings
from payment_service.store import payments as store
from payment_service.store.tables import (
    outbox,
    payment_attempts,
    payments,
    sandbox_charges,
    sandbox_refunds,
)
from payment_service.workers.executor import PaymentExecutor
from payment_service.workers.expiry import AuthorizationExpiry
from payment_service.workers.operations import OperationSender


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: nothing after this point runs, nothing is recorded."""


class FaultyTransport:
    """Wraps the real transport and fails at a chosen point of the provider call."""

    def __init__(self, inner: Any, *, crash: str | None = None, lose_answer: bool = False):
        self.inner = inner
        self.crash = crash
        self.lose_answer = lose_answer

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        if self.crash == "before":
            raise SimulatedCrash
        answer = await self.inner.send(request)
        if self.crash == "after":
            raise SimulatedCrash
        if self.lose_answer:
            raise ProviderUnavailable("the connection dropped after the request was sent")
        return answer

    async def find_payment(self, payment_id: uuid.UUID, **kwargs: Any) -> Any:
        return await self.inner.find_payment(payment_id, **kwargs)

    async def retrieve_payment(self, reference: str) -> Any:
        return await self.inner.retrieve_payment(reference)

    async def find_refund(self, refund_id: uuid.UUID, **kwargs: Any) -> Any:
        return await self.inner.find_refund(refund_id, **kwargs)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def make_executor(
    own_database: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Callable[..., tuple[PaymentExecutor, Any]]]:
    closers: list[Any] = []

    def make(
        crash: str | None = None,
        lose_answer: bool = False,
        watch: Callable[[Any], Any] | None = None,
        **overrides: Any,
    ):
        settings = settings_factory(database_url=own_database, **overrides)
        engine = create_engine(settings, pool_size=3)
        sessionmaker = create_sessionmaker(engine)
        connector, transport = build_connector(settings, engine=engine)
        client = ServiceClient(settings, target="user", retries=0)
        closers.extend([engine.dispose, client.aclose, transport.aclose])
        faulty: Any = FaultyTransport(transport, crash=crash, lose_answer=lose_answer)
        executor = PaymentExecutor(
            settings=settings,
            sessionmaker=sessionmaker,
            connector=connector,
            transport=watch(faulty) if watch else faulty,
            users=UserDirectory(client),
        )
        return executor, sessionmaker

    yield make
    for close in closers:
        await close()


@pytest.fixture
async def make_sender(
    own_database: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Callable[..., OperationSender]]:
    """An operation sender (captures, voids, refunds) of a process of its own, maybe crashing."""
    closers: list[Any] = []

    def make(crash: str | None = None, lose_answer: bool = False, **overrides: Any):
        settings = settings_factory(database_url=own_database, **overrides)
        engine = create_engine(settings, pool_size=3)
        connector, transport = build_connector(settings, engine=engine)
        closers.extend([engine.dispose, transport.aclose])
        return OperationSender(
            settings=settings,
            sessionmaker=create_sessionmaker(engine),
            connector=connector,
            transport=FaultyTransport(transport, crash=crash, lose_answer=lose_answer),
        )

    yield make
    for close in closers:
        await close()


async def new_payment(sessionmaker: Any, user_id: uuid.UUID, provider: str = "stripe") -> Any:
    order = OrderCreated(order_id=uuid.uuid4(), user_id=user_id, amount=1234, currency="usd")
    async with unit_of_work(sessionmaker) as session:
        # the payment's provider is the one that charges it (every connector is wired)
        assert await domain.record_order(session, order, provider=provider)
        return await store.get_payment_by_order(session, order.order_id)


async def snapshot(sessionmaker: Any, payment_id: uuid.UUID) -> tuple[Any, list[str], int]:
    async with sessionmaker() as session:
        payment = await store.get_payment(session, payment_id)
        attempts = [a.status for a in await store.list_attempts(session, payment_id)]
        events = (
            await session.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.key == str(payment.order_id))
            )
        ).scalar_one()
    return payment, attempts, events


async def visa_user(stripe_api: Stripe, user_service: UserServiceStandIn) -> uuid.UUID:
    customer, pm = await stripe_api.customer_with("pm_card_visa")
    return user_service.add_user(pm, customer)


async def test_a_crash_after_the_provider_call_is_reconciled_by_adopting_the_intent(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    crashing, sessionmaker = make_executor(crash="after")
    payment = await new_payment(sessionmaker, await visa_user(stripe_api, user_service))

    with pytest.raises(SimulatedCrash):
        await crashing.run_once()
    stuck, attempts, events = await snapshot(sessionmaker, payment.id)
    assert (stuck.status, attempts, events) == ("processing", ["in_flight"], 0)
    assert len(await stripe_api.intents_for(payment.id)) == 1

    # A fresh process: too early, the attempt may still be running somewhere: hands off.
    patient, _ = make_executor(reconcile_after_seconds=60)
    assert await patient.reconcile_stale() == 0
    assert await patient.run_once() == 0

    restarted, _ = make_executor(reconcile_after_seconds=0)
    assert await restarted.reconcile_stale() == 1
    assert await restarted.run_once() == 0
    settled, attempts, events = await snapshot(sessionmaker, payment.id)
    intents = await stripe_api.intents_for(payment.id)
    assert (settled.status, attempts, events) == ("succeeded", ["succeeded"], 1)
    assert [pi["id"] for pi in intents] == [settled.provider_reference]


async def test_a_crash_before_the_provider_call_is_retried_once_nothing_is_found(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    crashing, sessionmaker = make_executor(crash="before")
    payment = await new_payment(sessionmaker, await visa_user(stripe_api, user_service))
    with pytest.raises(SimulatedCrash):
        await crashing.run_once()

    restarted, _ = make_executor(reconcile_after_seconds=0)
    assert await restarted.reconcile_stale() == 1
    assert await restarted.run_once() == 1
    settled, attempts, events = await snapshot(sessionmaker, payment.id)
    assert (settled.status, attempts, events) == ("succeeded", ["abandoned", "succeeded"], 1)
    assert len(await stripe_api.intents_for(payment.id)) == 1


async def test_a_lost_answer_is_reconciled_before_any_new_attempt(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    flaky, sessionmaker = make_executor(lose_answer=True, retry_base_seconds=0.05)
    payment = await new_payment(sessionmaker, await visa_user(stripe_api, user_service))
    assert await flaky.run_once() == 1
    unknown, attempts, _ = await snapshot(sessionmaker, payment.id)
    assert (unknown.status, unknown.needs_reconcile, attempts) == ("created", True, ["unknown"])

    healthy, _ = make_executor(retry_base_seconds=0.05)
    await asyncio.sleep(0.1)
    assert await healthy.run_once() == 1
    settled, attempts, events = await snapshot(sessionmaker, payment.id)
    assert (settled.status, attempts, events) == ("succeeded", ["succeeded"], 1)
    assert len(await stripe_api.intents_for(payment.id)) == 1


async def test_a_cancellation_during_a_lost_attempt_waits_for_the_provider_answer(
    make_executor: Any, make_sender: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    flaky, sessionmaker = make_executor(lose_answer=True, retry_base_seconds=0.05)
    user_id = await visa_user(stripe_api, user_service)
    payment = await new_payment(sessionmaker, user_id)
    await flaky.run_once()
    from paygate_common.events import OrderCancelled

    async with unit_of_work(sessionmaker) as session:
        status = await domain.cancel_for_order(
            session, OrderCancelled(order_id=payment.order_id, user_id=user_id, reason="stale")
        )
    # The provider may have charged: not cancelled blindly.
    assert status == "created"
    healthy, _ = make_executor(retry_base_seconds=0.05)
    await asyncio.sleep(0.1)
    await healthy.run_once()
    settled, _, _ = await snapshot(sessionmaker, payment.id)
    assert settled.status == "succeeded"  # the truth: the money moved
    assert len(await stripe_api.intents_for(payment.id)) == 1
    # ...and the order is cancelled, so it goes back on its own: never paid-but-cancelled.
    async with sessionmaker() as session:
        [refund] = await store.list_refunds(session, payment.id)
    assert (refund.source, refund.amount, refund.status) == ("cancellation", 1234, "pending")
    async with sessionmaker() as session:
        operation = await store.operation_for_refund(session, refund.id)
    await make_sender().send(operation.id)
    refunded, _, _ = await snapshot(sessionmaker, payment.id)
    assert (refunded.status, refunded.amount_refunded) == ("refunded", 1234)
    assert len(await stripe_api.refunds_for(refunded.provider_reference)) == 1


@pytest.mark.slow
async def test_sandbox_with_injected_provider_failures_charges_every_payment_exactly_once(
    make_executor: Any, user_service: UserServiceStandIn
) -> None:
    executor, sessionmaker = make_executor(
        connector="sandbox",
        sandbox_failure_rate=0.4,
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        executor_batch_size=20,
        max_provider_attempts=50,
    )
    user_id = user_service.add_user("pm_card_visa", None)
    created = [await new_payment(sessionmaker, user_id, "sandbox") for _ in range(20)]
    ids = [p.id for p in created]
    for _ in range(200):
        await executor.run_once()
        async with sessionmaker() as session:
            rows = [await store.get_payment(session, pid) for pid in ids]
        if all(r.status == "succeeded" for r in rows):
            break
        await asyncio.sleep(0.02)
    assert {r.status for r in rows} == {"succeeded"}
    async with sessionmaker() as session:
        charges = (
            await session.execute(
                select(sandbox_charges.c.payment_id, func.count())
                .where(sandbox_charges.c.payment_id.in_(ids))
                .group_by(sandbox_charges.c.payment_id)
            )
        ).all()
        retried = (
            await session.execute(
                select(func.count())
                .select_from(payment_attempts)
                .where(
                    payment_attempts.c.payment_id.in_(ids), payment_attempts.c.status != "succeeded"
                )
            )
        ).scalar_one()
    assert sorted(count for _, count in charges) == [1] * 20
    assert retried > 0  # failures were injected and survived


# --- batches: leased and started in one transaction, sent together, settled in one ---------------


class WatchingTransport:
    """Passes calls through; at the first one, reads what the database already holds for the
    batch, and counts how many calls overlap."""

    def __init__(self, inner: Any, sessionmaker: Any, payment_ids: list[uuid.UUID]) -> None:
        self.inner = inner
        self.sessionmaker = sessionmaker
        self.payment_ids = payment_ids
        self.first_view: list[Any] | None = None
        self.in_flight = 0
        self.peak = 0

    async def send(self, request: ProviderRequest) -> Mapping[str, Any]:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.first_view is None:
                self.first_view = []
                self.first_view = await batch_view(self.sessionmaker, self.payment_ids)
            return await self.inner.send(request)
        finally:
            self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def batch_view(sessionmaker: Any, payment_ids: list[uuid.UUID]) -> list[Any]:
    """(status, updated_at, attempt statuses, attempt started_at) per payment, in input order."""
    async with sessionmaker() as session:
        rows = []
        for payment_id in payment_ids:
            payment = await store.get_payment(session, payment_id)
            attempts = await store.list_attempts(session, payment_id)
            rows.append(
                (
                    payment.status,
                    payment.updated_at,
                    [a.status for a in attempts],
                    attempts[-1].started_at if attempts else None,
                )
            )
    return rows


async def direct_payment(sessionmaker: Any, user_id: uuid.UUID, token: str = "pm_card_visa") -> Any:
    async with unit_of_work(sessionmaker) as session:
        return await domain.create_payment(
            session,
            domain.DirectPayment(
                user_id=user_id,
                amount=1500,
                currency="usd",
                provider="stripe",
                capture_method="automatic",
                payment_method_id=None,
                payment_method_token=token,
                description=None,
                metadata=None,
                return_url=None,
            ),
        )


async def payment_events(sessionmaker: Any, payment: Any) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(outbox.c.event_type).where(
                outbox.c.topic == "payment.event",
                outbox.c.key == str(payment.order_id or payment.id),
            )
        )
    return [event_type for (event_type,) in rows]


async def test_a_batch_is_started_before_any_call_sent_at_once_and_settled_in_one_transaction(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    watching: dict[str, WatchingTransport] = {}
    ids: list[uuid.UUID] = []

    def watch(inner: Any) -> WatchingTransport:
        watching["t"] = WatchingTransport(inner, None, ids)
        return watching["t"]

    executor, sessionmaker = make_executor(watch=watch)
    watching["t"].sessionmaker = sessionmaker
    user_id = await visa_user(stripe_api, user_service)
    # Two with a token (leased and started in one statement pair) and an order's payment
    # whose saved method is looked up first (started in the second transaction).
    tokened = [await direct_payment(sessionmaker, user_id) for _ in range(2)]
    looked_up = await new_payment(sessionmaker, user_id)
    ids.extend([p.id for p in tokened] + [looked_up.id])

    assert await executor.run_once() == 3
    transport = watching["t"]
    assert transport.first_view is not None
    # Every attempt of the batch was durable before the first provider heard of any.
    assert [(status, attempts) for status, _, attempts, _ in transport.first_view] == [
        ("processing", ["in_flight"])
    ] * 3
    lease_txn = {started for _, _, _, started in transport.first_view[:2]}
    assert len(lease_txn) == 1  # the lease's transaction started both tokened attempts
    assert transport.peak == 3  # the three calls overlapped

    settled = await batch_view(sessionmaker, ids)
    assert [(status, attempts) for status, _, attempts, _ in settled] == [
        ("succeeded", ["succeeded"])
    ] * 3
    assert len({updated for _, updated, _, _ in settled}) == 1  # one outcome transaction
    for payment in [*tokened, looked_up]:
        assert await payment_events(sessionmaker, payment) == ["payment.succeeded"]
        assert len(await stripe_api.intents_for(payment.id)) == 1


async def test_a_crash_after_a_batch_of_provider_calls_charges_none_of_them_twice(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    crashing, sessionmaker = make_executor(crash="after")
    user_id = await visa_user(stripe_api, user_service)
    batch = [await direct_payment(sessionmaker, user_id) for _ in range(3)]
    ids = [p.id for p in batch]
    with pytest.raises(SimulatedCrash):
        await crashing.run_once()
    stuck = await batch_view(sessionmaker, ids)
    assert [(status, attempts) for status, _, attempts, _ in stuck] == [
        ("processing", ["in_flight"])
    ] * 3

    restarted, _ = make_executor(reconcile_after_seconds=0)
    assert await restarted.reconcile_stale() == 3
    assert await restarted.run_once() == 0  # adopted: nothing is charged again
    settled = await batch_view(sessionmaker, ids)
    assert [(status, attempts) for status, _, attempts, _ in settled] == [
        ("succeeded", ["succeeded"])
    ] * 3
    for payment in batch:
        assert len(await stripe_api.intents_for(payment.id)) == 1
        assert await payment_events(sessionmaker, payment) == ["payment.succeeded"]


async def test_a_batch_of_results_moves_each_payment_only_as_the_table_allows(
    make_executor: Any, user_service: UserServiceStandIn
) -> None:
    from paygate_common.events import PaymentStatus
    from payment_service.connectors.base import ConnectorResult

    _, sessionmaker = make_executor()
    user_id = user_service.add_user("pm_card_visa", None)
    paid, held, final = [await direct_payment(sessionmaker, user_id) for _ in range(3)]
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(payments).where(payments.c.id == final.id).values(status="failed")
        )
        rows = await domain.apply_results(
            session,
            [
                (paid.id, ConnectorResult(PaymentStatus.SUCCEEDED, provider_reference="pi_a")),
                (
                    held.id,
                    ConnectorResult(PaymentStatus.REQUIRES_CAPTURE, provider_reference="pi_b"),
                ),
                (final.id, ConnectorResult(PaymentStatus.SUCCEEDED, provider_reference="pi_c")),
            ],
            from_states=("created", "processing"),
            capture_window_seconds=3600,
        )
    assert [row.status if row else None for row in rows] == ["succeeded", "requires_capture", None]
    async with sessionmaker() as session:
        a, b, c = [await store.get_payment(session, p.id) for p in (paid, held, final)]
    assert (a.amount_captured, a.amount_capturable, a.provider_reference) == (1500, 0, "pi_a")
    assert (b.amount_capturable, b.provider_reference) == (1500, "pi_b")
    assert 3500 < (b.capture_before - b.updated_at).total_seconds() <= 3600
    assert (c.status, c.provider_reference) == ("failed", None)  # final: never moved
    assert await payment_events(sessionmaker, paid) == ["payment.succeeded"]
    assert await payment_events(sessionmaker, held) == ["payment.requires_capture"]
    assert await payment_events(sessionmaker, final) == []


async def test_an_answer_the_database_refuses_holds_up_only_its_own_payment(
    make_executor: Any, user_service: UserServiceStandIn
) -> None:
    from paygate_common.events import PaymentStatus
    from payment_service.connectors.base import ConnectorResult

    crashing, sessionmaker = make_executor(crash="before")
    user_id = user_service.add_user("pm_card_visa", None)
    good, bad = [await direct_payment(sessionmaker, user_id) for _ in range(2)]
    with pytest.raises(SimulatedCrash):
        await crashing.run_once()  # both started, neither sent: as a restart finds them
    recorder, _ = make_executor()
    await recorder.record_outcomes(
        [
            (good.id, 1, ConnectorResult(PaymentStatus.SUCCEEDED, provider_reference="pi_ok")),
            # longer than the column: the database refuses the whole batch statement
            (bad.id, 1, ConnectorResult(PaymentStatus.SUCCEEDED, provider_reference="x" * 300)),
        ]
    )
    (ok_status, _, ok_attempts, _), (bad_status, _, bad_attempts, _) = await batch_view(
        sessionmaker, [good.id, bad.id]
    )
    assert (ok_status, ok_attempts) == ("succeeded", ["succeeded"])
    assert (bad_status, bad_attempts) == ("processing", ["in_flight"])  # the reconciler's
    assert await payment_events(sessionmaker, good) == ["payment.succeeded"]
    assert await payment_events(sessionmaker, bad) == []
    async with unit_of_work(sessionmaker) as session:  # out of later tests' reconciliations
        await session.execute(
            update(payment_attempts)
            .where(payment_attempts.c.payment_id == bad.id)
            .values(status="abandoned")
        )
        await session.execute(
            update(payments).where(payments.c.id == bad.id).values(status="failed")
        )


def test_one_charging_loop_listens_beside_the_reconciler(make_executor: Any) -> None:
    executor, sessionmaker = make_executor()
    engine = sessionmaker.kw["bind"]
    workers = executor.workers(engine=engine, channel="paygate_payment_work")
    assert [(w.name, w.channel) for w in workers] == [
        ("payment-executor", "paygate_payment_work"),
        ("payment-reconciler", None),
    ]


# --- captures and refunds: recorded before the call, reconciled after a crash --------------------


async def paid_payment(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> tuple[Any, Any]:
    executor, sessionmaker = make_executor()
    payment = await new_payment(sessionmaker, await visa_user(stripe_api, user_service))
    assert await executor.run_once() == 1
    paid, _, _ = await snapshot(sessionmaker, payment.id)
    assert paid.status == "succeeded"
    return paid, sessionmaker


async def record_refund(sessionmaker: Any, payment_id: uuid.UUID, amount: int) -> tuple[Any, Any]:
    async with unit_of_work(sessionmaker) as session:
        refund = await refunds.request_refund(session, payment_id, amount=amount, reason=None)
        operation = await store.operation_for_refund(session, refund.id)
    return refund, operation


async def refund_state(sessionmaker: Any, refund_id: uuid.UUID) -> tuple[str, str, Any]:
    async with sessionmaker() as session:
        refund = await store.get_refund(session, refund_id)
        operation = await store.operation_for_refund(session, refund_id)
        payment = await store.get_payment(session, refund.payment_id)
    return refund.status, operation.status, payment


@pytest.mark.parametrize("crash", ["after", "before"])
async def test_a_refund_whose_sender_died_mid_call_is_made_exactly_once(
    crash: str,
    make_executor: Any,
    make_sender: Any,
    stripe_api: Stripe,
    user_service: UserServiceStandIn,
) -> None:
    paid, sessionmaker = await paid_payment(make_executor, stripe_api, user_service)
    refund, operation = await record_refund(sessionmaker, paid.id, 500)

    with pytest.raises(SimulatedCrash):
        await make_sender(crash=crash).send(operation.id)
    assert (await refund_state(sessionmaker, refund.id))[:2] == ("pending", "in_flight")
    made = await stripe_api.refunds_for(paid.provider_reference)
    assert len(made) == (1 if crash == "after" else 0)

    # Too early for a fresh process: the call may still be running somewhere. Hands off.
    await make_sender(reconcile_after_seconds=60).run_pass()
    assert (await refund_state(sessionmaker, refund.id))[:2] == ("pending", "in_flight")
    restarted = make_sender(reconcile_after_seconds=0.2)
    await asyncio.sleep(0.3)
    assert await restarted.run_pass() >= 1

    status, op_status, payment = await refund_state(sessionmaker, refund.id)
    assert (status, op_status) == ("succeeded", "succeeded")
    assert (payment.status, payment.amount_refunded, payment.amount_refund_pending) == (
        "partially_refunded",
        500,
        0,
    )
    made = await stripe_api.refunds_for(paid.provider_reference)
    assert [(r["amount"], r["metadata"]["refund_id"]) for r in made] == [(500, str(refund.id))]


async def test_a_refund_whose_answer_was_lost_is_adopted_not_sent_again(
    make_executor: Any, make_sender: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    paid, sessionmaker = await paid_payment(make_executor, stripe_api, user_service)
    refund, operation = await record_refund(sessionmaker, paid.id, 1234)
    await make_sender(lose_answer=True, retry_base_seconds=0.05, retry_max_seconds=0.1).send(
        operation.id
    )
    assert (await refund_state(sessionmaker, refund.id))[:2] == ("pending", "unknown")

    healthy = make_sender()

    async def reconciled() -> bool:
        await healthy.run_pass()
        return (await refund_state(sessionmaker, refund.id))[0] != "pending"

    await wait_for(reconciled, timeout=10)
    status, op_status, payment = await refund_state(sessionmaker, refund.id)
    assert (status, op_status, payment.status) == ("succeeded", "succeeded", "refunded")
    assert len(await stripe_api.refunds_for(paid.provider_reference)) == 1


async def authorised_payment(
    make_executor: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> tuple[Any, Any]:
    executor, sessionmaker = make_executor()
    user_id = await visa_user(stripe_api, user_service)
    async with unit_of_work(sessionmaker) as session:
        payment = await domain.create_payment(
            session,
            domain.DirectPayment(
                user_id=user_id,
                amount=1000,
                currency="usd",
                provider="stripe",
                capture_method="manual",
                payment_method_id=None,
                payment_method_token=None,
                description=None,
                metadata=None,
                return_url=None,
            ),
        )
    assert await executor.run_once() >= 1
    authorised, _, _ = await snapshot(sessionmaker, payment.id)
    assert authorised.status == "requires_capture"
    return authorised, sessionmaker


async def test_a_capture_whose_sender_died_after_the_call_is_adopted(
    make_executor: Any, make_sender: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    payment, sessionmaker = await authorised_payment(make_executor, stripe_api, user_service)
    async with unit_of_work(sessionmaker) as session:
        operation = await domain.request_capture(session, payment.id, amount=700)
    with pytest.raises(SimulatedCrash):
        await make_sender(crash="after").send(operation.id)
    stuck, _, _ = await snapshot(sessionmaker, payment.id)
    assert stuck.status == "capturing"

    restarted = make_sender(reconcile_after_seconds=0.2)
    await asyncio.sleep(0.3)
    assert await restarted.run_pass() >= 1
    settled, _, _ = await snapshot(sessionmaker, payment.id)
    assert (settled.status, settled.amount_captured, settled.amount_capturable) == (
        "succeeded",
        700,
        0,
    )
    assert (await stripe_api.intent(settled.provider_reference))["status"] == "succeeded"


async def test_an_authorisation_left_uncaptured_past_its_window_is_voided(
    make_executor: Any, make_sender: Any, stripe_api: Stripe, user_service: UserServiceStandIn
) -> None:
    payment, sessionmaker = await authorised_payment(make_executor, stripe_api, user_service)
    sender = make_sender()
    expiry = AuthorizationExpiry(settings=sender.settings, sessionmaker=sessionmaker, sender=sender)
    assert await expiry.run_pass() == 0  # seven days to go
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(payments)
            .where(payments.c.id == payment.id)
            .values(capture_before=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1))
        )
    assert await expiry.run_pass() == 1
    voided, _, _ = await snapshot(sessionmaker, payment.id)
    assert (voided.status, voided.failure_code, voided.amount_capturable) == (
        "cancelled",
        "authorization_expired",
        0,
    )
    assert (await stripe_api.intent(voided.provider_reference))["status"] == "canceled"
    async with sessionmaker() as session:
        audits = (
            await session.execute(
                select(outbox.c.payload).where(
                    outbox.c.topic == "audit.event", outbox.c.key == str(payment.id)
                )
            )
        ).all()
    assert [(p["payload"]["action"], p["payload"]["actor_role"]) for (p,) in audits] == [
        ("payment.cancel_requested", "system")
    ]


@pytest.mark.slow
async def test_sandbox_with_injected_failures_refunds_every_refund_exactly_once(
    make_executor: Any, make_sender: Any, user_service: UserServiceStandIn
) -> None:
    chaos = {
        "connector": "sandbox",
        "sandbox_failure_rate": 0.4,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "executor_batch_size": 20,
        "max_provider_attempts": 50,
        "reconcile_after_seconds": 0.2,
    }
    executor, sessionmaker = make_executor(**{**chaos, "sandbox_failure_rate": 0.0})
    user_id = user_service.add_user("pm_card_visa", None)
    ids = []
    for _ in range(10):
        order = OrderCreated(order_id=uuid.uuid4(), user_id=user_id, amount=1000, currency="usd")
        async with unit_of_work(sessionmaker) as session:
            assert await domain.record_order(session, order, provider="sandbox")
            ids.append((await store.get_payment_by_order(session, order.order_id)).id)
    await executor.run_once()
    refund_ids = []
    for payment_id in ids:
        for amount in (400, 600):
            refund, _ = await record_refund(sessionmaker, payment_id, amount)
            refund_ids.append(refund.id)

    sender = make_sender(**chaos)

    async def all_settled() -> bool:
        await sender.run_pass()
        async with sessionmaker() as session:
            states = {(await store.get_refund(session, r)).status for r in refund_ids}
        return states == {"succeeded"}

    await wait_for(all_settled, timeout=60, interval=0.05)
    async with sessionmaker() as session:
        made = (
            await session.execute(
                select(sandbox_refunds.c.refund_id, func.count())
                .where(sandbox_refunds.c.refund_id.in_(refund_ids))
                .group_by(sandbox_refunds.c.refund_id)
            )
        ).all()
        payments_after = [await store.get_payment(session, p) for p in ids]
    assert sorted(count for _, count in made) == [1] * 20
    assert {(p.status, p.amount_refunded, p.amount_refund_pending) for p in payments_after} == {
        ("refunded", 1000, 0)
    }
