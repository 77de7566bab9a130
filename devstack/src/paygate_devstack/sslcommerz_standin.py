"""A stand-in for SSLCommerz v4 (sessions, gateway page, IPN, validation, refunds): a fake.

    python -m paygate_devstack.sslcommerz_standin --port 58431 [--state-dir .paygate/sslcommerz]

This is NOT SSLCommerz. It speaks the documented wire protocol closely enough that
payment-service's SSLCommerz client reaches it by configuration only (`api_base`):

- `POST /gwprocess/v4/api.php` (form; store_id, store_passwd, total_amount, currency, tran_id,
  success/fail/cancel/ipn urls, customer and product fields) → `{status: SUCCESS, sessionkey,
  GatewayPageURL, …}`, or `{status: FAILED, failedreason}`;
- the gateway page `GET /EasyCheckOut/{sessionkey}`: the stand-in's customer pays at once; the
  page answers like the real one, with an auto-submitting HTML form that POSTs the transaction
  fields (with `verify_sign` / `verify_key`) to success_url (or fail_url / cancel_url), and
  the IPN is POSTed (form) to ipn_url in the background, retried while it is not answered 2xx;
- `GET /validator/api/validationserverAPI.php?val_id=…&store_id=…&store_passwd=…&format=json`
  → the transaction (`status` VALID the first time, VALIDATED after), or INVALID_TRANSACTION;
- `GET /validator/api/merchantTransIDvalidationAPI.php` with `bank_tran_id&refund_amount&
  refund_remarks&refe_id` (initiate a refund), `refund_ref_id` (refund status) or `tran_id`
  (transactions of a merchant id).

Amounts in a currency other than BDT settle in BDT at fixed, made-up rates (`RATES`):
`currency`/`amount` are BDT, `currency_type`/`currency_amount` what the merchant asked for.

Test values (what the stand-in's customer does):
- total_amount whose minor units end in `02` (e.g. `100.02`), or cus_email `fail…`: the
  payment FAILS (fail_url, IPN status FAILED);
- minor units ending in `03`, or cus_email `cancel…`: the customer CANCELS (cancel_url, IPN
  status CANCELLED);
- anything else: paid (success_url, IPN status VALID).
A refund request repeating a `refe_id` gets the first answer again.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import secrets
from datetime import datetime
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from paygate_devstack.standin_kit import Notifier, StateFile

STORE_ID = "paygatelocal"
STORE_PASSWORD = "paygatelocal@ssl"
# Made-up BDT conversion rates for sessions in other currencies (a stand-in, not a rate feed).
RATES = {
    "BDT": Decimal("1"),
    "USD": Decimal("119.50"),
    "EUR": Decimal("129.80"),
    "GBP": Decimal("151.20"),
    "SGD": Decimal("88.40"),
    "INR": Decimal("1.43"),
}
REQUIRED_FIELDS = (
    "store_id",
    "store_passwd",
    "total_amount",
    "currency",
    "tran_id",
    "success_url",
    "fail_url",
    "cancel_url",
    "cus_name",
    "cus_email",
    "cus_add1",
    "cus_city",
    "cus_country",
    "cus_phone",
    "shipping_method",
    "product_name",
    "product_category",
    "product_profile",
)
IPN_RETRY_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)
# The fields a VALID notification signs (SSLCommerz's verify_key for card payments).
_SIGNED_VALID = (
    "amount,bank_tran_id,base_fair,card_brand,card_issuer,card_issuer_country,"
    "card_issuer_country_code,card_no,card_sub_brand,card_type,currency,currency_amount,"
    "currency_rate,currency_type,risk_level,risk_title,status,store_amount,store_id,tran_date,"
    "tran_id,val_id,value_a,value_b,value_c,value_d"
)
_SIGNED_UNPAID = "amount,bank_tran_id,currency,error,status,store_id,tran_date,tran_id,value_a"


def sign(fields: dict[str, str], store_password: str, verify_key: str) -> dict[str, str]:
    """Add verify_key, verify_sign (MD5) and verify_sign_sha2 the way SSLCommerz does."""
    names = verify_key.split(",")
    data = {name: fields.get(name, "") for name in names}
    data["store_passwd"] = hashlib.md5(store_password.encode()).hexdigest()  # noqa: S324
    message = "&".join(f"{k}={v}" for k, v in sorted(data.items())).encode()
    return {
        **fields,
        "verify_key": verify_key,
        "verify_sign": hashlib.md5(message).hexdigest(),  # noqa: S324 - the protocol's scheme
        "verify_sign_sha2": hashlib.sha256(message).hexdigest(),
    }


def _now() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _amount(value: str) -> Decimal | None:
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount > 0 else None


class SSLCommerzStandIn:
    """The stand-in's state (sessions, transactions, refunds, IPN deliveries) and its app."""

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        store_id: str = STORE_ID,
        store_password: str = STORE_PASSWORD,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir else None
        self.store_id = store_id
        self.store_password = store_password
        self.sessions: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}  # by val_id
        self.refunds: dict[str, dict[str, Any]] = {}  # by refund_ref_id
        self.refunds_by_refe_id: dict[str, str] = {}
        self.notifier = Notifier(IPN_RETRY_DELAYS, http)
        self.ipn_deliveries = self.notifier.deliveries
        self._state = StateFile(self.state_dir, self, self._PERSISTED)
        self._state.load()
        self.app = Starlette(
            routes=[
                Route("/gwprocess/v4/api.php", self.session_init, methods=["POST"]),
                Route("/EasyCheckOut/{sessionkey}", self.gateway_page, methods=["GET"]),
                Route("/validator/api/validationserverAPI.php", self.validation, methods=["GET"]),
                Route(
                    "/validator/api/merchantTransIDvalidationAPI.php",
                    self.merchant_api,
                    methods=["GET"],
                ),
            ]
        )

    _PERSISTED = ("sessions", "transactions", "refunds", "refunds_by_refe_id")

    def _credentials_ok(self, store_id: Any, password: Any) -> bool:
        return bool(store_id == self.store_id and password == self.store_password)

    # --- session init ---------------------------------------------------------------------

    async def session_init(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not self._credentials_ok(form.get("store_id"), form.get("store_passwd")):
            return _session_failed("Store Credential Error Or Store is De-active")
        missing = [name for name in REQUIRED_FIELDS if not form.get(name)]
        if missing:
            return _session_failed(f"Invalid Information! '{missing[0]}' is missing.")
        amount = _amount(form["total_amount"])
        currency = form["currency"].upper()
        if currency not in RATES:
            return _session_failed(f"Invalid Information! Currency {currency} is not supported.")
        if amount is None or not Decimal("10") <= amount * RATES[currency] <= Decimal("500000"):
            return _session_failed(
                "Invalid Information! 'total_amount' must be between 10 and 500000 BDT."
            )
        for url_field in ("success_url", "fail_url", "cancel_url", "ipn_url"):
            if form.get(url_field) and urlsplit(form[url_field]).scheme not in ("http", "https"):
                return _session_failed(f"Invalid Information! '{url_field}' is not a URL.")
        sessionkey = secrets.token_hex(16).upper()
        self.sessions[sessionkey] = {
            "sessionkey": sessionkey,
            "form": {k: v for k, v in form.items() if k != "store_passwd"},
            "status": "PENDING",
            "val_id": None,
            "created": _now(),
        }
        self._state.save()
        base = str(request.base_url).rstrip("/")
        page = f"{base}/EasyCheckOut/testcde{sessionkey}"
        return JSONResponse(
            {
                "status": "SUCCESS",
                "failedreason": "",
                "sessionkey": sessionkey,
                "gw": {"visa": "city_visa,ebl_visa", "master": "city_master", "amex": "city_amex"},
                "redirectGatewayURL": f"{page}?gw=",
                "directPaymentURLBank": "",
                "directPaymentURLCard": "",
                "directPaymentURL": "",
                "redirectGatewayURLFailed": "",
                "GatewayPageURL": page,
                "storeBanner": f"{base}/stores/logos/demoLogo.png",
                "storeLogo": f"{base}/stores/logos/demoLogo.png",
                "store_name": "paygate local (stand-in)",
                "desc": [],
                "is_direct_pay_enable": "0",
            }
        )

    # --- the customer pays -------------------------------------------------------------------

    async def gateway_page(self, request: Request) -> Response:
        key = request.path_params["sessionkey"].removeprefix("testcde")
        session = self.sessions.get(key)
        if session is None:
            return HTMLResponse("<h1>Invalid session</h1>", status_code=404)
        form = session["form"]
        if session["status"] == "PENDING":
            self._pay(session)
            self._state.save()
            self._send_ipn(session)
        outcome = session["status"]
        target = {"VALID": "success_url", "FAILED": "fail_url", "CANCELLED": "cancel_url"}[outcome]
        return HTMLResponse(_auto_post(form[target], session["notification"]))

    def _pay(self, session: dict[str, Any]) -> None:
        form = session["form"]
        asked = Decimal(form["total_amount"])
        currency = form["currency"].upper()
        rate = RATES[currency]
        places = 2
        bdt = (asked * rate).quantize(Decimal("0.01"))
        suffix = f"{asked:.{places}f}".replace(".", "")[-2:]
        email = form.get("cus_email", "").lower()
        if email.startswith("fail") or suffix == "02":
            status = "FAILED"
        elif email.startswith("cancel") or suffix == "03":
            status = "CANCELLED"
        else:
            status = "VALID"
        bank_tran_id = secrets.token_hex(10).upper()
        fields: dict[str, str] = {
            "tran_id": form["tran_id"],
            "amount": f"{bdt:.2f}",
            "currency": "BDT",
            "tran_date": _now(),
            "bank_tran_id": bank_tran_id,
            "status": status,
            "store_id": self.store_id,
            "value_a": form.get("value_a", ""),
            "value_b": form.get("value_b", ""),
            "value_c": form.get("value_c", ""),
            "value_d": form.get("value_d", ""),
        }
        if status == "VALID":
            val_id = (datetime.now().strftime("%y%m%d%H%M%S") + secrets.token_hex(5)).upper()
            fee = (bdt * Decimal("0.025")).quantize(Decimal("0.01"))
            fields.update(
                {
                    "val_id": val_id,
                    "store_amount": f"{bdt - fee:.2f}",
                    "card_type": "VISA-Dutch Bangla",
                    "card_no": "432149XXXXXX0667",
                    "card_issuer": "STANDARD CHARTERED BANK",
                    "card_brand": "VISA",
                    "card_sub_brand": "Classic",
                    "card_issuer_country": "Bangladesh",
                    "card_issuer_country_code": "BD",
                    "currency_type": currency,
                    "currency_amount": form["total_amount"],
                    "currency_rate": f"{rate:.4f}",
                    "base_fair": "0.00",
                    "risk_level": "0",
                    "risk_title": "Safe",
                }
            )
            session["val_id"] = val_id
            self.transactions[val_id] = {
                "fields": fields,
                "validated": False,
                "refunded": "0.00",
                "session": session["sessionkey"],
            }
            signed = sign(fields, self.store_password, _SIGNED_VALID)
        else:
            fields["error"] = (
                "Transaction declined by the issuing bank"
                if status == "FAILED"
                else "Cancelled by the customer"
            )
            signed = sign(fields, self.store_password, _SIGNED_UNPAID)
        session["status"] = status
        session["notification"] = signed

    def _send_ipn(self, session: dict[str, Any]) -> None:
        url = session["form"].get("ipn_url")
        if not url:
            return
        fields = session["notification"]
        self.notifier.send(url, {"tran_id": fields["tran_id"]}, lambda: {"data": fields})

    def cancel_deliveries(self) -> None:
        self.notifier.cancel()

    async def drain(self) -> None:
        """Wait for IPN deliveries in flight (tests, shutdown)."""
        await self.notifier.drain()

    # --- validation API ----------------------------------------------------------------------

    async def validation(self, request: Request) -> Response:
        q = request.query_params
        transaction = self.transactions.get(q.get("val_id", ""))
        if transaction is None or not self._credentials_ok(
            q.get("store_id"), q.get("store_passwd")
        ):
            return JSONResponse({"status": "INVALID_TRANSACTION", "APIConnect": "DONE"})
        status = "VALIDATED" if transaction["validated"] else "VALID"
        transaction["validated"] = True
        self._state.save()
        return JSONResponse(self._transaction_view(transaction, status))

    def _transaction_view(self, transaction: dict[str, Any], status: str) -> dict[str, Any]:
        fields = dict(transaction["fields"])
        fields.pop("store_id", None)
        fields.update(
            {
                "status": status,
                "validated_on": _now(),
                "gw_version": "",
                "emi_instalment": "0",
                "emi_amount": "0.00",
                "emi_description": "",
                "emi_issuer": "",
                "account_details": "",
                "APIConnect": "DONE",
            }
        )
        return fields

    # --- merchant API: refunds and transaction queries ------------------------------------------

    async def merchant_api(self, request: Request) -> Response:
        q = request.query_params
        if not self._credentials_ok(q.get("store_id"), q.get("store_passwd")):
            return JSONResponse(
                {"APIConnect": "INVALID_REQUEST", "errorReason": "Invalid store credentials"}
            )
        if q.get("refund_amount") is not None:
            return self._initiate_refund(q)
        if q.get("refund_ref_id"):
            refund = self.refunds.get(q["refund_ref_id"])
            if refund is None:
                return JSONResponse(
                    {
                        "APIConnect": "DONE",
                        "status": "failed",
                        "errorReason": "Invalid refund_ref_id",
                    }
                )
            if refund["status"] == "processing":
                # the bank settles a refund by the time anyone asks (a stand-in's shortcut)
                refund["status"] = "refunded"
                refund["refunded_on"] = _now()
                self._state.save()
            return JSONResponse(
                {
                    "APIConnect": "DONE",
                    "bank_tran_id": refund["bank_tran_id"],
                    "tran_id": refund["tran_id"],
                    "refund_ref_id": refund["refund_ref_id"],
                    "initiated_on": refund["initiated_on"],
                    "refunded_on": refund.get("refunded_on", ""),
                    "status": refund["status"],
                    "errorReason": "",
                }
            )
        if q.get("tran_id"):
            found = [
                self._transaction_view(t, "VALIDATED" if t["validated"] else "VALID")
                for t in self.transactions.values()
                if t["fields"]["tran_id"] == q["tran_id"]
            ]
            found += [
                {**s["notification"], "APIConnect": "DONE"}
                for s in self.sessions.values()
                if s["form"]["tran_id"] == q["tran_id"] and s["status"] in ("FAILED", "CANCELLED")
            ]
            return JSONResponse(
                {"APIConnect": "DONE", "no_of_trans_found": len(found), "element": found}
            )
        return JSONResponse({"APIConnect": "INVALID_REQUEST", "errorReason": "Nothing to do"})

    def _initiate_refund(self, q: Any) -> Response:
        bank_tran_id = q.get("bank_tran_id", "")
        refe_id = q.get("refe_id", "")
        if refe_id and refe_id in self.refunds_by_refe_id:
            refund = self.refunds[self.refunds_by_refe_id[refe_id]]
            return JSONResponse(refund["answer"])
        transaction = next(
            (t for t in self.transactions.values() if t["fields"]["bank_tran_id"] == bank_tran_id),
            None,
        )
        base = {
            "APIConnect": "DONE",
            "bank_tran_id": bank_tran_id,
            "trans_id": "",
            "refund_ref_id": "",
        }
        if transaction is None:
            return JSONResponse({**base, "status": "failed", "errorReason": "Invalid bank_tran_id"})
        fields = transaction["fields"]
        base["trans_id"] = fields["tran_id"]
        amount = _amount(q.get("refund_amount", ""))
        # refunds are in the currency the merchant charged in (currency_amount)
        charged = Decimal(fields["currency_amount"])
        remaining = charged - Decimal(transaction["refunded"])
        if amount is None:
            return JSONResponse(
                {**base, "status": "failed", "errorReason": "Invalid refund_amount"}
            )
        if amount > remaining:
            return JSONResponse(
                {
                    **base,
                    "status": "failed",
                    "errorReason": "Refund amount exceeds the refundable amount",
                }
            )
        refund_ref_id = secrets.token_hex(8)
        transaction["refunded"] = f"{Decimal(transaction['refunded']) + amount:.2f}"
        answer = {**base, "refund_ref_id": refund_ref_id, "status": "success", "errorReason": ""}
        self.refunds[refund_ref_id] = {
            "refund_ref_id": refund_ref_id,
            "bank_tran_id": bank_tran_id,
            "tran_id": fields["tran_id"],
            "amount": f"{amount:.2f}",
            "remarks": q.get("refund_remarks", ""),
            "status": "processing",
            "initiated_on": _now(),
            "answer": answer,
        }
        if refe_id:
            self.refunds_by_refe_id[refe_id] = refund_ref_id
        self._state.save()
        return JSONResponse(answer)


def _session_failed(reason: str) -> JSONResponse:
    return JSONResponse(
        {
            "status": "FAILED",
            "failedreason": reason,
            "sessionkey": "",
            "gw": [],
            "GatewayPageURL": "",
        }
    )


def _auto_post(action: str, fields: dict[str, str]) -> str:
    inputs = "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return (
        "<!doctype html><html><head><title>Redirecting…</title></head>"
        '<body onload="document.forms[0].submit()">'
        f'<form method="post" action="{html.escape(action)}">{inputs}'
        '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
    )


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.action:
            self.action, self.method = values.get("action", ""), values.get("method", "get")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def read_redirect_form(page: str) -> tuple[str, str, dict[str, str]]:
    """(method, action, fields) of the page's auto-submitting form: what a browser would send."""
    reader = _FormReader()
    reader.feed(page)
    return reader.method.upper(), reader.action, reader.fields


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygate_devstack.sslcommerz_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    import uvicorn

    standin = SSLCommerzStandIn(state_dir=args.state_dir)
    uvicorn.run(standin.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
