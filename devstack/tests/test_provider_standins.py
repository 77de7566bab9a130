"""The PayPal and SSLCommerz stand-ins speak their providers' wire protocols, checked from outside."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paygate_devstack import cli
from paygate_devstack import paypal_standin as paypal_module
from paygate_devstack import sslcommerz_standin as sslcommerz_module
from paygate_devstack.asgi import serve_asgi
from paygate_devstack.events_testing import wait_for
from paygate_devstack.paypal_standin import PayPalStandIn
from paygate_devstack.services import StackEndpoints
from paygate_devstack.sslcommerz_standin import read_redirect_form
from paygate_devstack.standins import (
    RunningStandIn,
    provider_standins,
    recording_server,
    register_paypal_webhook,
)


async def paypal_token(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(paypal_module.CLIENT_ID, paypal_module.CLIENT_SECRET),
    )
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def order_body(value: str = "12.34", **extra: Any) -> dict[str, Any]:
    return {
        "intent": "CAPTURE",
        "purchase_units": [{"amount": {"currency_code": "USD", "value": value}}],
        **extra,
    }


async def test_paypal_refuses_calls_without_a_valid_bearer_token(
    paypal_standin: RunningStandIn[Any],
) -> None:
    async with httpx.AsyncClient(base_url=paypal_standin.url) as http:
        anonymous = await http.post("/v2/checkout/orders", json=order_body())
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "invalid_token"
        wrong = await http.post(
            "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=("x", "y")
        )
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")


async def test_a_legacy_application_context_order_gets_an_approve_link_and_returns_the_payer(
    paypal_standin: RunningStandIn[Any],
) -> None:
    async with recording_server() as (recorder, shop):
        async with httpx.AsyncClient(base_url=paypal_standin.url) as http:
            auth = await paypal_token(http)
            context = {"return_url": f"{shop}/back?cart=7", "cancel_url": f"{shop}/cancel"}
            created = await http.post(
                "/v2/checkout/orders",
                json=order_body(application_context=context),
                headers=auth,
            )
            assert created.status_code == 201
            order = created.json()
            links = {link["rel"]: link["href"] for link in order["links"]}
            assert "approve" in links and "payer-action" not in links

            early = await http.post(f"/v2/checkout/orders/{order['id']}/capture", headers=auth)
            assert early.status_code == 422
            assert early.json()["details"][0]["issue"] == "ORDER_NOT_APPROVED"

        async with httpx.AsyncClient(follow_redirects=True) as browser:
            await browser.get(links["approve"])
        landed = recorder.to("/back")[0]
        assert landed.query["cart"] == "7"  # the merchant's own query survives
        assert landed.query["token"] == order["id"]


async def test_paypal_webhooks_are_signed_with_the_certificate_it_serves(
    paypal_standin: RunningStandIn[Any],
) -> None:
    async with recording_server() as (recorder, shop):
        async with httpx.AsyncClient(base_url=paypal_standin.url) as http:
            auth = await paypal_token(http)
            hook = await http.post(
                "/v1/notifications/webhooks",
                json={"url": f"{shop}/hook", "event_types": [{"name": "CHECKOUT.ORDER.APPROVED"}]},
                headers=auth,
            )
            assert hook.status_code == 201
            duplicate = await http.post(
                "/v1/notifications/webhooks", json={"url": f"{shop}/hook"}, headers=auth
            )
            assert duplicate.json()["name"] == "WEBHOOK_URL_ALREADY_EXISTS"
            order = (
                await http.post(
                    "/v2/checkout/orders",
                    json=order_body(
                        payment_source={
                            "paypal": {"experience_context": {"return_url": f"{shop}/r"}}
                        }
                    ),
                    headers=auth,
                )
            ).json()
            approve = next(link for link in order["links"] if link["rel"] == "payer-action")
            async with httpx.AsyncClient(follow_redirects=True) as browser:
                await browser.get(approve["href"])

            call = (await wait_for(lambda: recorder.to("/hook")))[0]
            assert json.loads(call.body)["resource"]["id"] == order["id"]
            cert_url = call.headers["paypal-cert-url"]
            cert = x509.load_pem_x509_certificate((await http.get(cert_url)).content)

        message = "|".join(
            [
                call.headers["paypal-transmission-id"],
                call.headers["paypal-transmission-time"],
                hook.json()["id"],
                str(zlib.crc32(call.body) & 0xFFFFFFFF),
            ]
        ).encode()
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        assert call.headers["paypal-auth-algo"] == "SHA256withRSA"
        key.verify(  # raises if the stand-in did not sign exactly like PayPal
            base64.b64decode(call.headers["paypal-transmission-sig"]),
            message,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        # only the subscribed event type was sent to this webhook
        assert {json.loads(c.body)["event_type"] for c in recorder.to("/hook")} == {
            "CHECKOUT.ORDER.APPROVED"
        }


async def test_paypal_keeps_its_orders_and_signing_key_in_its_state_dir(tmp_path: Path) -> None:
    first = PayPalStandIn(state_dir=tmp_path)
    async with serve_asgi(first.app) as url, httpx.AsyncClient(base_url=url) as http:
        auth = await paypal_token(http)
        order = (await http.post("/v2/checkout/orders", json=order_body(), headers=auth)).json()
    assert (tmp_path / "webhook-key.pem").exists()

    restarted = PayPalStandIn(state_dir=tmp_path)
    assert order["id"] in restarted.orders
    assert restarted.identity.cert_pem == first.identity.cert_pem


def session_form(standin: RunningStandIn[Any], shop: str, tran_id: str) -> dict[str, str]:
    """A complete SSLCommerz v4 session-init form whose callbacks all go to `shop`."""
    return {
        "store_id": standin.store_id,
        "store_passwd": standin.store_password,
        "total_amount": "250.00",
        "currency": "BDT",
        "tran_id": tran_id,
        "success_url": f"{shop}/ok",
        "fail_url": f"{shop}/fail",
        "cancel_url": f"{shop}/cancel",
        "ipn_url": f"{shop}/ipn",
        "cus_name": "Karim",
        "cus_email": "karim@example.com",
        "cus_add1": "Road 1",
        "cus_city": "Dhaka",
        "cus_country": "Bangladesh",
        "cus_phone": "01700000000",
        "shipping_method": "NO",
        "product_name": "Tea",
        "product_category": "food",
        "product_profile": "general",
    }


async def test_an_ipn_not_answered_2xx_is_sent_again_unchanged(
    sslcommerz_standin: RunningStandIn[Any],
) -> None:
    received: list[bytes] = []

    async def busy_once(scope: Any, receive: Any, send: Any) -> None:
        """A merchant whose first IPN answer is a 503."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(body)
        status = 503 if len(received) == 1 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serve_asgi(busy_once) as shop, httpx.AsyncClient() as http:
        form = session_form(sslcommerz_standin, shop, "paygate-tran-retry")
        session = (
            await http.post(f"{sslcommerz_standin.url}/gwprocess/v4/api.php", data=form)
        ).json()
        await http.get(session["GatewayPageURL"])
        await wait_for(lambda: len(received) >= 2)
    assert received[0] == received[1]
    attempts = [
        d["status_code"]
        for d in sslcommerz_standin.ipn_deliveries
        if d["tran_id"] == "paygate-tran-retry"
    ]
    assert attempts == [503, 200]


async def test_sslcommerz_gateway_page_posts_signed_fields_and_validation_answers_once_valid(
    sslcommerz_standin: RunningStandIn[Any],
) -> None:
    async with recording_server() as (recorder, shop):
        form = session_form(sslcommerz_standin, shop, "paygate-tran-1")
        async with httpx.AsyncClient(base_url=sslcommerz_standin.url) as http:
            missing = await http.post("/gwprocess/v4/api.php", data={**form, "cus_phone": ""})
            assert missing.json()["status"] == "FAILED"
            session = (await http.post("/gwprocess/v4/api.php", data=form)).json()
            assert session["status"] == "SUCCESS" and session["sessionkey"]

            page = await http.get(session["GatewayPageURL"])
            method, action, fields = read_redirect_form(page.text)
            assert (method, action) == ("POST", f"{shop}/ok")

            # the verify_sign scheme, computed here independently of the stand-in
            names = fields["verify_key"].split(",")
            data = {n: fields[n] for n in names}
            data["store_passwd"] = hashlib.md5(form["store_passwd"].encode()).hexdigest()
            text = "&".join(f"{k}={v}" for k, v in sorted(data.items()))
            assert fields["verify_sign"] == hashlib.md5(text.encode()).hexdigest()
            assert {"amount", "currency", "tran_id", "val_id", "status"} <= set(names)

            ipn = (await wait_for(lambda: recorder.to("/ipn")))[0].form()
            assert ipn["val_id"] == fields["val_id"] and ipn["status"] == "VALID"

            params = {
                "val_id": fields["val_id"],
                "store_id": form["store_id"],
                "store_passwd": form["store_passwd"],
                "format": "json",
            }
            validation = "/validator/api/validationserverAPI.php"
            first = (await http.get(validation, params=params)).json()
            second = (await http.get(validation, params=params)).json()
            assert (first["status"], second["status"]) == ("VALID", "VALIDATED")
            assert (first["tran_id"], first["amount"], first["currency"]) == (
                "paygate-tran-1",
                "250.00",
                "BDT",
            )
            unknown = (await http.get(validation, params={**params, "val_id": "nope"})).json()
            assert unknown["status"] == "INVALID_TRANSACTION"
            wrong_store = (
                await http.get(validation, params={**params, "store_passwd": "x"})
            ).json()
            assert wrong_store["status"] == "INVALID_TRANSACTION"


def test_make_run_starts_both_standins_and_hands_services_their_endpoints(
    tmp_path: Path,
) -> None:
    stack = cli.Stack(root=tmp_path, state=tmp_path / "state")  # a root with no services
    stack.components.update(provider_standins(stack.state, stack.logs, env={}))
    assert set(stack.components) == {"paypal", "sslcommerz"}
    try:
        for component in stack.components.values():
            component.start()
        endpoints = StackEndpoints(
            database_url="postgresql+asyncpg://postgres@127.0.0.1:1/paygate",
            redis_url="redis://127.0.0.1:1/0",
            kafka_bootstrap="127.0.0.1:1",
            stripe_api_base="http://127.0.0.1:1",
            stripe_api_key="sk_test_x",
            smtp_host="127.0.0.1",
            smtp_port=1,
        )
        secrets = {"stripe_webhook_secret": "whsec_x", "service_token_secret": "s" * 48}
        env = cli.start_services(stack, endpoints, secrets)

        paypal, sslcommerz = stack.components["paypal"], stack.components["sslcommerz"]
        assert env["PAYPAL_API_BASE"] == paypal.url
        assert env["SSLCOMMERZ_API_BASE"] == sslcommerz.url
        assert env["SSLCOMMERZ_STORE_ID"] == sslcommerz_module.STORE_ID
        payment_hook = json.loads(env["PAYGATE_SERVICE_URLS"])["payment"] + "/webhooks/paypal"
        with httpx.Client(base_url=paypal.url) as http:
            token = http.post(
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(env["PAYPAL_CLIENT_ID"], env["PAYPAL_CLIENT_SECRET"]),
            ).json()["access_token"]
            hooks = http.get(
                "/v1/notifications/webhooks", headers={"Authorization": f"Bearer {token}"}
            ).json()["webhooks"]
        assert [(h["id"], h["url"]) for h in hooks] == [(env["PAYPAL_WEBHOOK_ID"], payment_hook)]
        # the next run finds that webhook instead of registering a second one
        assert register_paypal_webhook(paypal.url, payment_hook) == env["PAYPAL_WEBHOOK_ID"]
        assert (stack.state / "paypal" / "webhook-cert.pem").exists()
    finally:
        # not stack.stop(): that ends every process this interpreter started (the session's too)
        for component in stack.components.values():
            component.stop()

    configured = provider_standins(
        tmp_path, tmp_path / "logs", env={"PAYPAL_API_BASE": "https://api-m.sandbox.paypal.com"}
    )
    assert set(configured) == {"sslcommerz"}


@pytest.mark.parametrize("module", [paypal_module, sslcommerz_module])
def test_each_standin_says_it_is_a_stand_in(module: Any) -> None:
    assert "stand-in" in (module.__doc__ or "").splitlines()[0]


async def test_paypal_order_nobody_approves_expires_to_404_but_an_approved_one_stays(
    paypal_standin: RunningStandIn[Any],
) -> None:
    async with httpx.AsyncClient(base_url=paypal_standin.url) as http:
        auth = await paypal_token(http)
        waiting = (await http.post("/v2/checkout/orders", json=order_body(), headers=auth)).json()
        context = {"return_url": "http://127.0.0.1:9/back", "cancel_url": "http://127.0.0.1:9/no"}
        approved = (
            await http.post(
                "/v2/checkout/orders", json=order_body(application_context=context), headers=auth
            )
        ).json()
        approve_link = next(link["href"] for link in approved["links"] if link["rel"] == "approve")
        async with httpx.AsyncClient() as browser:  # the payer approves; the return is not followed
            assert (await browser.get(approve_link)).status_code == 302
        assert (await http.get(f"/v2/checkout/orders/{waiting['id']}", headers=auth)).json()[
            "status"
        ] == "CREATED"
        # Both outlive PayPal's approval window (3 hours): only the unapproved one is gone.
        for order_id in (waiting["id"], approved["id"]):
            paypal_standin.orders[order_id]["approve_before"] = "2000-01-01T00:00:00+00:00"
        gone = await http.get(f"/v2/checkout/orders/{waiting['id']}", headers=auth)
        assert gone.status_code == 404
        assert gone.json()["name"] == "RESOURCE_NOT_FOUND"
        late = await http.post(f"/v2/checkout/orders/{waiting['id']}/capture", headers=auth)
        assert late.status_code == 404
        kept = await http.get(f"/v2/checkout/orders/{approved['id']}", headers=auth)
        assert kept.json()["status"] == "APPROVED"


async def test_paypal_outage_answers_503_to_every_api_call_until_switched_off(
    paypal_standin: RunningStandIn[Any],
) -> None:
    async with httpx.AsyncClient(base_url=paypal_standin.url) as http:
        auth = await paypal_token(http)
        order = (await http.post("/v2/checkout/orders", json=order_body(), headers=auth)).json()
        assert (await http.post("/_config/outage", json={"down": True})).json() == {"down": True}
        try:
            down = await http.get(f"/v2/checkout/orders/{order['id']}", headers=auth)
            assert (down.status_code, down.json()["name"]) == (503, "SERVICE_UNAVAILABLE")
            token = await http.post(
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(paypal_module.CLIENT_ID, paypal_module.CLIENT_SECRET),
            )
            assert token.status_code == 503
        finally:
            await http.post("/_config/outage", json={"down": False})
        back = await http.get(f"/v2/checkout/orders/{order['id']}", headers=auth)
        assert back.json()["status"] == "CREATED"
