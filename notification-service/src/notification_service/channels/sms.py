"""SMS through an HTTP provider API in Twilio's Messages shape (form POST, basic auth)."""

from __future__ import annotations

import re

import httpx

from notification_service.channels.email import DeliveryError, PermanentDeliveryError
from notification_service.settings import Settings

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's limit for one message body (it splits into segments itself).
MAX_SMS_CHARS = 1600


class TwilioSmsClient:
    """`POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json` with `To`, `From`, `Body`."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client or httpx.AsyncClient(
            timeout=settings.sms_timeout_seconds, trust_env=False
        )

    async def send(self, *, to: str, body: str) -> str:
        """Hand one message to the provider; returns its message sid."""
        s = self.settings
        if not E164.match(to):
            raise PermanentDeliveryError("the phone number is not in E.164 form")
        url = f"{s.sms_api_base.rstrip('/')}/2010-04-01/Accounts/{s.sms_account_sid}/Messages.json"
        try:
            response = await self.client.post(
                url,
                data={"To": to, "From": s.sms_from_number, "Body": body[:MAX_SMS_CHARS]},
                auth=(s.sms_account_sid, s.sms_auth_token.get_secret_value()),
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"SMS provider unreachable: {type(exc).__name__}") from None
        if response.status_code in (200, 201):
            sid = response.json().get("sid")
            return str(sid) if sid else ""
        reason = f"SMS provider answered HTTP {response.status_code}"
        try:
            detail = response.json()
            reason += f" (code {detail.get('code')}: {str(detail.get('message', ''))[:200]})"
        except ValueError:
            pass
        # 4xx means the request itself is wrong (bad number, bad credentials): resending the
        # same request gets the same answer. 429 and 5xx may pass later.
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise PermanentDeliveryError(reason)
        raise DeliveryError(reason)

    async def aclose(self) -> None:
        await self.client.aclose()
