"""The one masking policy of the suite: what of a text or a JSON value may be stored or logged.

`mask_text` redacts secrets and card-like numbers in free text and shortens emails and phone
numbers; `mask_data` walks a JSON value, drops the values of fields whose name says secret
(`password`, `api_key`, `authorization`, `cvc`, ...), shortens `phone`-named fields and masks
every string (and every card-like integer) it keeps. The audit service stores only what went
through `mask_data`; the log filter (`paygate_common.logging`) masks every line with
`mask_text(..., keep_last4=True)`: one rule set for what is stored and what is logged.

What survives on purpose: UUIDs and hex ids (a request id is not a card number even when it
holds 16 digits in a row), IP addresses, amounts, dates.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
CARD = "[card]"
JWT = "[jwt]"

# --- secrets in text ---------------------------------------------------------------------------

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+")
# Provider and paygate secrets by their prefix: paygate API keys (`pgk_`), webhook signing
# secrets (`whsec_`), Stripe secret/restricted keys (`sk_`, `rk_`) and client secrets.
_PREFIXED_SECRET = re.compile(
    r"(?<![A-Za-z0-9])(?:pgk_|pgr_|whsec_|sk_|rk_|(?:pi|seti|src)_[A-Za-z0-9]+_secret_)"
    r"[A-Za-z0-9_+/=-]+"
)
_SECRET_WORDS = (
    "password|passwd|pwd|passphrase|secret|client_secret|token|access_token|refresh_token|"
    "id_token|api_key|apikey|api-key|private_key|secret_key|key|authorization|cookie|set-cookie|"
    "cvc|cvv|cvv2|cvc2|card_number|pan"
)
# `password=hunter2`, `"token": "abc"`, `Authorization: xyz` inside a text.
_KEY_VALUE = re.compile(
    r"(?i)((?<![A-Za-z0-9_])[\"']?(?:" + _SECRET_WORDS + r")[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[)([^\"'\s,;&}]+)"
)

# --- card-like numbers -------------------------------------------------------------------------

# 13 or more digits, optionally grouped by single spaces or dashes (4242 4242 4242 4242); the
# card rule (13-19 digits, Luhn) is applied to runs of whole groups inside the match.
_CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,47}\d(?!\d)")
# Hex ids and UUIDs are protected: a digit run inside one is not a card number.
_HEX_TOKEN = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{20,})(?![0-9A-Za-z])"
)

# --- personal data -----------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
# International numbers only in free text (`+14155552671`, `+44 20 7946 0958`): a bare digit
# group is as likely an amount, a date or an id.
_PHONE = re.compile(r"(?<![\w+])\+\d(?:[ ().-]?\d){6,15}(?!\d)")

# Field names (split on `_`, `-` and camelCase) whose value is dropped whole.
SECRET_FIELD_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "key",
        "keys",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "cvc",
        "cvv",
        "cvv2",
        "cvc2",
        "pin",
        "pan",
        "signature",
    }
)
SECRET_FIELD_NAMES = frozenset({"card_number", "cardnumber", "number", "client_secret"})
PHONE_FIELD_WORDS = frozenset({"phone", "mobile", "msisdn", "tel"})

_WORD_SPLIT = re.compile(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every card number (PAN) satisfies."""
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ISO/IEC 7812's major industry identifier: 0 is never issued and 1 is airline (UATP) only, so a
# Luhn-valid run starting with 0, or with 1 at another length than UATP's 15 digits, is a counter
# or an epoch-milliseconds timestamp (13 digits, one in ten passes Luhn), not a card number; 2-6
# are the card networks, 7-9 are kept masked.
_ISSUED_MII = frozenset("23456789")
_UATP_LENGTH = 15


def is_card_number(digits: str) -> bool:
    """13-19 digits, an issued major industry identifier (UATP: 1 and 15 digits), a valid Luhn checksum."""
    return (
        digits.isdigit()
        and 13 <= len(digits) <= 19
        and (digits[0] in _ISSUED_MII or (digits[0] == "1" and len(digits) == _UATP_LENGTH))
        and luhn_valid(digits)
    )


def card_placeholder(digits: str, *, keep_last4: bool = False) -> str:
    """`[card]`, or `[card ****4242]` where the last four digits may be shown (logs)."""
    return f"[card ****{digits[-4:]}]" if keep_last4 else CARD


def _mask_cards(text: str, *, keep_last4: bool = False) -> str:
    protected = [m.span() for m in _HEX_TOKEN.finditer(text)]

    def replace(match: re.Match[str]) -> str:
        start, end = match.span()
        if any(s < end and start < e for s, e in protected):
            return match.group(0)
        raw = match.group(0)
        # A grouped number may run into a neighbouring group (`1999 4242 4242 4242 4242`):
        # test every run of whole groups, never arbitrary windows (those pass Luhn by chance).
        groups = re.split(r"[ -]", raw)
        for i in range(len(groups)):
            for j in range(len(groups), i, -1):
                digits = "".join(groups[i:j])
                if is_card_number(digits):
                    return card_placeholder(digits, keep_last4=keep_last4)
        return raw

    return _CARD_CANDIDATE.sub(replace, text)


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j***@example.com`."""
    return _EMAIL.sub(r"\1***\2", email)


def mask_phone(phone: str) -> str:
    """Keep the `+` and the last two digits: `+14155552671` → `+*********71`."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 4:
        return "*" * len(digits)
    return ("+" if phone.strip().startswith("+") else "") + "*" * (len(digits) - 2) + digits[-2:]


def mask_text(text: str, *, keep_last4: bool = False) -> str:
    """Redact what must never be stored or logged; shorten emails and phone numbers.

    `keep_last4` leaves a card's last four digits in its placeholder (what a support engineer
    reading a log needs, and what PCI DSS allows to be shown).
    """
    if not text:
        return text
    text = text.replace("\x00", "")  # PostgreSQL text and jsonb refuse NUL
    text = _JWT.sub(JWT, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PREFIXED_SECRET.sub(REDACTED, text)
    # Cards before `key=value`: a value stops at a space, so `pan=4242 4242 4242 4242` would
    # otherwise lose only its first group and show the other twelve digits.
    text = _mask_cards(text, keep_last4=keep_last4)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _EMAIL.sub(r"\1***\2", text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def field_words(name: str) -> set[str]:
    return {w.lower() for w in _WORD_SPLIT.split(name) if w}


def is_secret_field(name: str) -> bool:
    """`password`, `api_key`, `refreshToken`, `Authorization`, `cvc`, `client_secret`, ..."""
    lowered = name.lower()
    if lowered in SECRET_FIELD_NAMES:
        return True
    return bool(field_words(name) & SECRET_FIELD_WORDS) or lowered.endswith(
        ("password", "secret", "token", "apikey")
    )


def is_phone_field(name: str) -> bool:
    return bool(field_words(name) & PHONE_FIELD_WORDS)


def mask_data(value: Any, *, field: str | None = None) -> Any:
    """A masked copy of a JSON value (dicts, lists, strings, numbers); the input is untouched."""
    if field is not None:
        if is_secret_field(field):
            return None if value is None else REDACTED
        if is_phone_field(field) and isinstance(value, str | int):
            return mask_phone(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return CARD if is_card_number(str(abs(value))) else value
    if isinstance(value, float):
        return value
    if isinstance(value, dict):
        return {mask_text(str(k)): mask_data(v, field=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_data(v) for v in value]
    return mask_text(str(value))


__all__ = [
    "CARD",
    "JWT",
    "REDACTED",
    "card_placeholder",
    "is_card_number",
    "is_phone_field",
    "is_secret_field",
    "luhn_valid",
    "mask_data",
    "mask_email",
    "mask_phone",
    "mask_text",
]
