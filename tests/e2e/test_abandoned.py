"""An order whose payment is abandoned in `requires_action` ends `cancelled`, through the gateway.

payment-service is restarted for this module with a tiny `ACTION_WINDOW_SECONDS` (and started
again as it was afterwards, so the other modules' 3-D Secure payments are not swept); the
customer never finishes 3-D Secure, the sweeper asks localstripe, cancels the PaymentIntent
there and the payment here, and order-service's `payment.event` consumer cancels the order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_support import Suite, sign_up
from test_checkout import localstripe_card

from paygate_devstack.events_testing import wait_for

pytestmark = pytest.mark.e2e


def _restart_payment(suite: Suite, env: dict[str, str]) -> None:
    old = suite.procs["payment"]
    old.stop()
    if old in suite.stack.started:
        suite.stack.started.remove(old)
    suite.procs["payment"] = suite.stack.start_service("payment", env)


@pytest.fixture(scope="module")
def sweeping(suite: Suite) -> Iterator[None]:
    before = dict(suite.procs["payment"].env)
    _restart_payment(
        suite,
        {
            **before,
            "PAYMENT_SERVICE_ACTION_WINDOW_SECONDS": "2",
            "PAYMENT_SERVICE_ABANDONED_INTERVAL_SECONDS": "0.5",
        },
    )
    try:
        yield
    finally:
        _restart_payment(suite, before)


async def test_an_order_left_in_3d_secure_is_cancelled_with_action_expired(
    suite: Suite, http: httpx.AsyncClient, sweeping: None
) -> None:
    buyer = await sign_up(http)
    await buyer.save_card(localstripe_card(suite, "4000002500003155"))
    order = (await buyer.order(amount=2600)).json()
    assert await buyer.wait_status(order["id"], {"requires_action", "cancelled"}) in (
        "requires_action",
        "cancelled",
    )

    assert await buyer.wait_status(order["id"], {"cancelled"}, timeout=60) == "cancelled"
    detail = (await http.get(f"/orders/{order['id']}", headers=buyer.headers)).json()
    assert detail["payment"]["failure_code"] == "action_expired"

    async def payment() -> dict[str, Any] | None:
        r = await http.get(f"/payments/{detail['payment']['payment_id']}", headers=buyer.headers)
        body = r.json()
        return body if body.get("status") == "cancelled" else None

    cancelled = await wait_for(payment, timeout=30)
    assert cancelled["failure_code"] == "action_expired"
    intents = [
        pi
        for pi in suite.stack.stripe.payment_intents()
        if (pi.get("metadata") or {}).get("order_id") == order["id"]
    ]
    assert [pi["status"] for pi in intents] == ["canceled"]  # cancelled at Stripe too, once
