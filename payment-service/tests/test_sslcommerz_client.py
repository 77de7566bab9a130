"""The SSLCommerz client against the SSLCommerz stand-in: sessions, IPN checks, refunds."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from paygate_common.events import PaymentStatus, RefundStatus
from paygate_devstack import sslcommerz_standin as standin_module
from paygate_devstack.events_testing import wait_for
from paygate_devstack.sslcommerz_standin import read_redirect_form
from paygate_devstack.standins import CallbackRecorder, RunningStandIn, recording_server
from payment_service.connectors.provider_http import (
    ProviderHttpError,
    UnsupportedByProvider,
    WebhookRejected,
    status_after_refunds,
)
from payment_service.connectors.sslcommerz import (
    Customer,
    ExpectedPayment,
    SessionCreate,
    SSLCommerzClient,
    SSLCommerzConfig,
    protocol,
)

CUSTOMER = Customer(name="Rahim Uddin", email="rahim@example.com", phone="01711111111")


@pytest.fixture(scope="module")
async def merchant() -> AsyncIterator[tuple[CallbackRecorder, str]]:
    async with recording_server() as server:
        yield server


@pytest.fixture
async def client(sslcommerz_standin: RunningStandIn[Any]) -> AsyncIterator[SSLCommerzClient]:
    config = SSLCommerzConfig(
        api_base=sslcommerz_standin.url,
        store_id=standin_module.STORE_ID,
        store_password=SecretStr(standin_module.STORE_PASSWORD),
    )
    async with SSLCommerzClient(config) as sslcommerz:
        yield sslcommerz


def session_for(
    merchant: tuple[CallbackRecorder, str],
    amount: int,
    currency: str = "bdt",
    customer: Customer = CUSTOMER,
) -> SessionCreate:
    _, url = merchant
    return SessionCreate(
        payment_id=uuid.uuid4(),
        amount=amount,
        currency=currency,
        success_url=f"{url}/ssl/success",
        fail_url=f"{url}/ssl/fail",
        cancel_url=f"{url}/ssl/cancel",
        ipn_url=f"{url}/ssl/ipn",
        customer=customer,
        product_name="Order 42",
    )


async def customer_pays(page_url: str) -> tuple[str, str, dict[str, str]]:
    """The customer's browser: open the gateway page, submit the form it auto-submits."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as browser:
        page = await browser.get(page_url)
        assert page.status_code == 200
        method, action, fields = read_redirect_form(page.text)
        landed = await browser.request(method, action, data=fields)
        assert landed.status_code == 200
        return method, action, fields


async def ipn_for(recorder: CallbackRecorder, session: SessionCreate) -> dict[str, str]:
    def arrived() -> dict[str, str] | None:
        for call in recorder.to("/ssl/ipn"):
            form = call.form()
            if form.get("tran_id") == str(session.payment_id):
                return form
        return None

    result: dict[str, str] = await wait_for(arrived)
    return result


def expected(session: SessionCreate) -> ExpectedPayment:
    return ExpectedPayment(session.payment_id, session.amount, session.currency)


async def paid_session(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str], amount: int
) -> tuple[SessionCreate, dict[str, str]]:
    session = session_for(merchant, amount)
    created = await client.create_session(session)
    assert created.next_action is not None
    await customer_pays(created.next_action["redirect_to_url"]["url"])
    ipn = await ipn_for(merchant[0], session)
    assert (await client.confirm_payment(ipn, expected(session))).status is PaymentStatus.SUCCEEDED
    return session, ipn


async def test_a_bdt_session_is_paid_on_the_gateway_page_and_confirmed_by_ipn_and_validation(
    client: SSLCommerzClient,
    merchant: tuple[CallbackRecorder, str],
    sslcommerz_standin: RunningStandIn[Any],
) -> None:
    recorder, _ = merchant
    session = session_for(merchant, 150050)
    created = await client.create_session(session)

    assert created.status is PaymentStatus.REQUIRES_ACTION
    assert created.next_action is not None
    page_url = created.next_action["redirect_to_url"]["url"]
    assert page_url.startswith(f"{sslcommerz_standin.url}/EasyCheckOut/")
    sent = next(
        s["form"]
        for s in sslcommerz_standin.sessions.values()
        if s["form"]["tran_id"] == str(session.payment_id)
    )
    assert (sent["total_amount"], sent["currency"]) == ("1500.50", "BDT")
    assert sent["ipn_url"] == session.ipn_url

    method, action, fields = await customer_pays(page_url)
    assert (method, action) == ("POST", session.success_url)  # as the real gateway: a form POST
    assert fields["status"] == "VALID"
    assert recorder.to("/ssl/success")[-1].form()["tran_id"] == str(session.payment_id)

    ipn = await ipn_for(recorder, session)
    paid = await client.confirm_payment(ipn, expected(session))
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.raw_status == "VALID"  # the validation API's first answer
    assert (paid.amount_captured, paid.currency) == (150050, "bdt")
    assert paid.provider_reference == ipn["bank_tran_id"]

    # the browser's success POST carries the same signed fields: it confirms the same way
    again = await client.confirm_payment(fields, expected(session))
    assert (again.status, again.raw_status) == (PaymentStatus.SUCCEEDED, "VALIDATED")


async def test_a_usd_session_settles_in_bdt_but_is_checked_in_usd(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str]
) -> None:
    session = session_for(merchant, 2500, "usd")
    created = await client.create_session(session)
    assert created.next_action is not None
    await customer_pays(created.next_action["redirect_to_url"]["url"])
    ipn = await ipn_for(merchant[0], session)
    assert (ipn["currency"], ipn["currency_type"], ipn["currency_amount"]) == (
        "BDT",
        "USD",
        "25.00",
    )
    paid = await client.confirm_payment(ipn, expected(session))
    assert (paid.status, paid.amount_captured, paid.currency) == (
        PaymentStatus.SUCCEEDED,
        2500,
        "usd",
    )


async def test_a_tampered_ipn_is_rejected_before_anything_is_paid(
    client: SSLCommerzClient,
    merchant: tuple[CallbackRecorder, str],
    sslcommerz_standin: RunningStandIn[Any],
) -> None:
    session = session_for(merchant, 99900)
    created = await client.create_session(session)
    assert created.next_action is not None
    await customer_pays(created.next_action["redirect_to_url"]["url"])
    ipn = await ipn_for(merchant[0], session)
    validations_before = sslcommerz_standin.transactions[ipn["val_id"]]["validated"]

    wrong_sign = {**ipn, "verify_sign": hashlib.md5(b"forged").hexdigest()}
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(wrong_sign, expected(session))
    assert rejected.value.reason == "signature_mismatch"

    cheaper = {**ipn, "amount": "9.00", "currency_amount": "9.00"}
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(cheaper, expected(session))
    assert rejected.value.reason == "signature_mismatch"

    unsigned = {k: v for k, v in ipn.items() if k != "verify_sign"}
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(unsigned, expected(session))
    assert rejected.value.reason == "missing_signature"
    # none of those even reached the validation API
    assert sslcommerz_standin.transactions[ipn["val_id"]]["validated"] == validations_before

    # genuinely signed, but for less than we asked: the amount check refuses it
    more_than_paid = ExpectedPayment(session.payment_id, 100000, "bdt")
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(ipn, more_than_paid)
    assert rejected.value.reason == "amount_mismatch"
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(ipn, ExpectedPayment(session.payment_id, 99900, "usd"))
    assert rejected.value.reason == "currency_mismatch"
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(ipn, ExpectedPayment(uuid.uuid4(), 99900, "bdt"))
    assert rejected.value.reason == "tran_id_mismatch"


async def test_a_signed_ipn_that_leaves_the_amount_unsigned_is_rejected(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str]
) -> None:
    session, ipn = await paid_session(client, merchant, 50000)
    fields = {k: v for k, v in ipn.items() if not k.startswith("verify_")}
    signed_keys = "bank_tran_id,status,tran_id,val_id,currency"  # no amount
    resigned = standin_module.sign(fields, standin_module.STORE_PASSWORD, signed_keys)
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(resigned, expected(session))
    assert rejected.value.reason == "money_fields_not_signed"


async def test_the_validation_api_is_the_last_word(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str]
) -> None:
    session, ipn = await paid_session(client, merchant, 42000)
    # a correctly signed IPN naming a val_id SSLCommerz never issued: refused
    fields = {k: v for k, v in ipn.items() if not k.startswith("verify_")}
    fields["val_id"] = "2501011200001NOTREAL"
    forged = standin_module.sign(fields, standin_module.STORE_PASSWORD, ipn["verify_key"])
    with pytest.raises(WebhookRejected) as rejected:
        await client.confirm_payment(forged, expected(session))
    assert (rejected.value.reason, rejected.value.detail) == (
        "validation_refused",
        "INVALID_TRANSACTION",
    )


@pytest.mark.parametrize(
    ("amount", "landing", "status"),
    [(100002, "/ssl/fail", PaymentStatus.FAILED), (100003, "/ssl/cancel", PaymentStatus.CANCELLED)],
)
async def test_failed_and_cancelled_payments_land_on_their_urls_and_are_not_paid(
    client: SSLCommerzClient,
    merchant: tuple[CallbackRecorder, str],
    amount: int,
    landing: str,
    status: PaymentStatus,
) -> None:
    session = session_for(merchant, amount)  # test values: minor units ending 02 / 03
    created = await client.create_session(session)
    assert created.next_action is not None
    _, action, _ = await customer_pays(created.next_action["redirect_to_url"]["url"])
    assert action.endswith(landing)
    ipn = await ipn_for(merchant[0], session)
    outcome = await client.confirm_payment(ipn, expected(session))
    assert outcome.status is status
    assert outcome.amount_captured == 0


async def test_refunds_partial_then_full_reach_refunded(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str]
) -> None:
    _, ipn = await paid_session(client, merchant, 200000)
    first_id, second_id = uuid.uuid4(), uuid.uuid4()

    first = await client.refund(
        bank_tran_id=ipn["bank_tran_id"], amount=50000, currency="bdt", refund_id=first_id
    )
    assert first.status is RefundStatus.PENDING  # accepted; the bank settles it
    assert first.provider_refund_id
    settled = await client.get_refund(first.provider_refund_id)
    assert settled.status is RefundStatus.SUCCEEDED
    assert status_after_refunds(200000, 50000) is PaymentStatus.PARTIALLY_REFUNDED

    replay = await client.refund(
        bank_tran_id=ipn["bank_tran_id"], amount=50000, currency="bdt", refund_id=first_id
    )
    assert replay.provider_refund_id == first.provider_refund_id  # same refe_id, one refund

    too_much = await client.refund(
        bank_tran_id=ipn["bank_tran_id"], amount=150001, currency="bdt", refund_id=uuid.uuid4()
    )
    assert too_much.status is RefundStatus.FAILED
    assert too_much.failure_message

    rest = await client.refund(
        bank_tran_id=ipn["bank_tran_id"], amount=150000, currency="bdt", refund_id=second_id
    )
    assert (await client.get_refund(rest.provider_refund_id)).status is RefundStatus.SUCCEEDED
    assert status_after_refunds(200000, 50000 + 150000) is PaymentStatus.REFUNDED


async def test_a_lost_ipn_is_recovered_by_querying_our_transaction_id(
    client: SSLCommerzClient, merchant: tuple[CallbackRecorder, str]
) -> None:
    session, _ = await paid_session(client, merchant, 30000)
    found = await client.find_payment(expected(session))
    assert found is not None and found.status is PaymentStatus.SUCCEEDED
    assert await client.find_payment(ExpectedPayment(uuid.uuid4(), 30000, "bdt")) is None


async def test_wrong_store_credentials_fail_session_init(
    sslcommerz_standin: RunningStandIn[Any], merchant: tuple[CallbackRecorder, str]
) -> None:
    config = SSLCommerzConfig(
        api_base=sslcommerz_standin.url,
        store_id=standin_module.STORE_ID,
        store_password=SecretStr("wrong"),
    )
    async with SSLCommerzClient(config) as sslcommerz:
        with pytest.raises(ProviderHttpError) as refused:
            await sslcommerz.create_session(session_for(merchant, 10000))
    assert refused.value.code == "session_init_failed"
    assert "Credential" in refused.value.message


async def test_there_is_no_authorise_capture_or_void(client: SSLCommerzClient) -> None:
    assert client.supports_manual_capture is False
    for operation in (client.authorize, client.capture, client.void):
        with pytest.raises(UnsupportedByProvider) as unsupported:
            await operation()
        assert unsupported.value.code == "unsupported_by_provider"


# --- the pure protocol layer ------------------------------------------------------------------


def test_verify_sign_is_md5_over_sorted_fields_and_the_hashed_password() -> None:
    fields = {
        "tran_id": "T1",
        "amount": "10.00",
        "status": "VALID",
        "verify_key": "tran_id,amount,status",
    }
    hashed = hashlib.md5(b"secret").hexdigest()
    message = f"amount=10.00&status=VALID&store_passwd={hashed}&tran_id=T1"
    assert protocol.verify_sign(fields, "secret") == hashlib.md5(message.encode()).hexdigest()


def test_session_init_sends_a_two_decimal_amount_and_our_id() -> None:
    session = SessionCreate(
        payment_id=uuid.uuid4(),
        amount=1005,
        currency="bdt",
        success_url="https://s",
        fail_url="https://f",
        cancel_url="https://c",
        ipn_url="https://i",
        customer=CUSTOMER,
    )
    call = protocol.build_session_init(session, store_id="s1", store_password="p1")
    assert call.form is not None
    assert (call.form["total_amount"], call.form["currency"]) == ("10.05", "BDT")
    assert call.form["tran_id"] == str(session.payment_id)


@pytest.mark.parametrize("status", list(protocol.TransactionStatus))
def test_every_transaction_status_has_a_paygate_state(status: protocol.TransactionStatus) -> None:
    assert isinstance(protocol.transaction_status(status), PaymentStatus)


@pytest.mark.parametrize("state", list(protocol.RefundState))
def test_every_refund_state_has_a_paygate_state(state: protocol.RefundState) -> None:
    assert isinstance(protocol.refund_state(state), RefundStatus)
