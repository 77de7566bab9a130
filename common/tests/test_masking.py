"""The shared masking policy: no secret, token, key, card number or full email survives it,
while UUIDs, hex request ids, IPs, amounts and dates come through intact."""

from __future__ import annotations

import json
import typing
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from paygate_common.events.models import EVENT_MODELS
from paygate_common.masking import mask_data, mask_email, mask_phone, mask_text

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXRoYXQtaXMtbG9uZw"
SECRETS = {
    "email": "jane.doe@example.com",
    "jwt": JWT,
    "bearer": "Bearer opaque-token-value-123",
    "api_key": "pgk_live_3xAmPlEk3yV4lu3_9f8e7d6c",
    "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "stripe_key": "sk_live_51HxAmPlEsEcReTkEy0123",
    "client_secret": "pi_3Nxyz_secret_abcDEF123",
    "visa": "4242424242424242",
    "visa_grouped": "4242 4242 4242 4242",
    "amex_dashed": "3782-822463-10005",
    "debit": "4000056655665556",
    "phone": "+14155552671",
}
# Values that only a field's name marks as secret.
NAMED_SECRETS = {
    "password": "correct-horse-battery-staple",
    "secret": "s3cr3t-v4lu3",
    "token": "opaque-refresh-9f8e7d",
    "key": "raw-key-material-77",
    "authorization": "Basic dXNlcjpwYXNz",
    "cvc": "123",
}
FORBIDDEN = [
    *SECRETS.values(),
    *NAMED_SECRETS.values(),
    "jane.doe",
    "eyJ",
    "pgk_",
    "whsec_",
    "sk_live",
    "_secret_",
    "4155552671",
    "4242424242424242",
    "4000056655665556",
    "378282246310005",
]


def sensitive_text() -> str:
    return " | ".join(f"{k}: {v}" for k, v in SECRETS.items())


def sample(annotation: Any) -> Any:
    """A value of the field's type that carries every sensitive-looking string it can hold."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return sample(args[0])
    if annotation is uuid.UUID:
        # fixed, so no random id can happen to contain a forbidden digit run such as "123"
        return uuid.UUID("e7d0c0de-aaaa-4bbb-8ccc-dddddddddddd")
    if annotation is int:
        return 4242424242424242
    if annotation is str:
        return sensitive_text()
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation))
    if annotation is datetime:
        return datetime.now(UTC)
    # dicts and Any: nested secrets by value and by name
    return {"note": sensitive_text(), **NAMED_SECRETS, "nested": [{"password": "x" * 8, **SECRETS}]}


def _fitting(value: Any, field: Any) -> Any:
    """The sample cut to the field's `max_length` (the secrets lead the text, so they stay in)."""
    limits = [m.max_length for m in field.metadata if getattr(m, "max_length", None)]
    return value[: min(limits)] if isinstance(value, str) and limits else value


def loaded_payload(model: type[BaseModel]) -> dict[str, Any]:
    values = {
        name: _fitting(sample(field.annotation), field)
        for name, field in model.model_fields.items()
    }
    return model.model_validate(values).model_dump(mode="json")


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_no_sensitive_value_survives_any_event_model(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    payload = loaded_payload(model)
    raw = json.dumps(payload)
    assert any(s in raw for s in FORBIDDEN), "the sample must carry secrets to begin with"
    masked = json.dumps(mask_data(payload))
    for forbidden in FORBIDDEN:
        assert forbidden not in masked, (event_type, forbidden)
    # Ids of the model come through unchanged (UUIDs are never mistaken for card numbers).
    for name, value in payload.items():
        if name.endswith("_id") and isinstance(value, str) and len(value) == 36:
            assert mask_data(payload)[name] == value


def test_ids_ips_amounts_and_dates_survive() -> None:
    request_id = "1234567890123456" + uuid.uuid4().hex[16:]
    for text in (
        str(uuid.uuid4()),
        "41111111-1111-1111-1111-111111111111",
        uuid.uuid4().hex,
        request_id,
        "203.0.113.7",
        "2026-12-01T21:41:10.123456+00:00",
        "amount 1999 usd",
        "order ord_123 pm_card_visa",
    ):
        assert mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("card 4242 4242 4242 4242.", "card [card]."),
        ("4242424242424241", "4242424242424241"),  # fails Luhn: not a card
        ("uatp 135410014004955", "uatp [card]"),  # an airline (UATP) card: MII 1, 15 digits
        ("at 1764633600002 ms", "at 1764633600002 ms"),  # Luhn-valid epoch ms: MII 1, 13 digits
        ("token=abc123&x=1", "token=[redacted]&x=1"),
        ('{"password": "hunter2"}', '{"password": "[redacted]"}'),
        ("Authorization: Bearer abc.def", "Authorization: [redacted] [redacted]"),
        ("key whsec_abc123 here", "key whsec_abc123 here".replace("whsec_abc123", "[redacted]")),
    ],
)
def test_text_rules(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_secret_field_names_drop_their_values_whatever_they_hold() -> None:
    masked = mask_data(
        {
            "refreshToken": "a",
            "api_key": 1,
            "client_secret": ["x"],
            "Authorization": "b",
            "cvc": "123",
            "password_confirmation": "c",
            "keys": {"p256dh": "d", "auth": "e"},
            "full_name": "Jane Doe",
            "amount": 1999,
        }
    )
    assert masked == {
        "refreshToken": "[redacted]",
        "api_key": "[redacted]",
        "client_secret": "[redacted]",
        "Authorization": "[redacted]",
        "cvc": "[redacted]",
        "password_confirmation": "[redacted]",
        "keys": "[redacted]",
        "full_name": "Jane Doe",
        "amount": 1999,
    }


def test_emails_and_phones_are_shortened_not_removed() -> None:
    assert mask_email("a@b.co") == "a***@b.co"
    assert mask_phone("+880 1711-000000") == "+***********00"
    assert mask_data({"phone_number": "01711000000"}) == {"phone_number": "*********00"}
