"""Masking hides every card number and secret and leaves identifiers (request ids, UUIDs) intact,
in the logs (`logging.mask`) and in what is stored (`masking.mask_text`) alike: one rule set."""

import json
import secrets
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from paygate_common.logging import mask
from paygate_common.masking import CARD, luhn_valid, mask_text

# Stripe's documented test card numbers (all pass Luhn), 15 to 19 digits.
TEST_PANS = [
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "5200828282828210",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "3056930009020004",
    "36227206271667",
    "6200000000000005",
    "3566002020360505",
    "4000002500003155",
    "4000000000000341",
    "4000000000000002",
    "6205500000000000004",
]


def _gateway_request_id(prefix: str, counter: int) -> str:
    # gateway.proxy.new_request_id: 16 hex of process prefix + a 16-hex counter
    return f"{prefix}{counter:016x}"


identifiers = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    # longer than any card number: 20+ hex characters (a 16-digit all-decimal hex id that passes
    # Luhn is a card number as far as anyone reading the log can tell)
    st.binary(min_size=10, max_size=32).map(bytes.hex),
    st.builds(
        _gateway_request_id,
        st.binary(min_size=8, max_size=8).map(bytes.hex),
        st.integers(min_value=0, max_value=2**64 - 1),
    ),
    st.uuids().map(lambda u: f"pi_{u.hex[:24]}"),
)


@settings(max_examples=500, deadline=None)
@given(identifier=identifiers)
def test_identifiers_survive_masking_unchanged(identifier: str) -> None:
    for line in (
        json.dumps({"request_id": identifier, "msg": "order created"}),
        f"payment {identifier} succeeded",
        f"[{identifier}] GET /orders/{identifier}",
    ):
        assert mask(line) == line
        assert mask_text(line) == line


def test_the_request_ids_the_probe_saw_mangled_are_left_alone() -> None:
    # 48acb4c0956004f…e76 held the Luhn-valid run 0956004…: the old rule masked inside it.
    for _ in range(2000):
        rid = secrets.token_hex(16)
        assert mask(f'"request_id": "{rid}"') == f'"request_id": "{rid}"'
        u = str(uuid.uuid4())
        assert mask(u) == u


def _formats(pan: str) -> list[str]:
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return [pan, " ".join(groups), "-".join(groups)]


@settings(max_examples=300, deadline=None)
@given(
    pan=st.sampled_from(TEST_PANS),
    style=st.integers(min_value=0, max_value=2),
    template=st.sampled_from(
        [
            "{}",
            "card {} declined",
            '{{"card_number": "{}"}}',
            "pan={}&cvc=123",
            "({})",
            "number:{}.",
            "request_id=4f2a9c7e1b3d5a60 card {} uuid 9b1d2f4e-1c3a-4b5d-8e6f-7a8b9c0d1e2f",
        ]
    ),
)
def test_no_test_pan_survives_masking(pan: str, style: int, template: str) -> None:
    written = _formats(pan)[style]
    masked = mask(template.format(written))
    # Not even the middle digits: `pan=4242 4242 …` once lost only its first group.
    assert pan[4:-4] not in masked.replace(" ", "").replace("-", "")
    assert f"[card ****{pan[-4:]}]" in masked
    stored = mask_text(template.format(written))
    assert pan[4:-4] not in stored.replace(" ", "").replace("-", "")
    assert CARD in stored


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@settings(max_examples=300, deadline=None)
@given(
    body=st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("23456"),
        st.text(alphabet="0123456789", min_size=11, max_size=17),
    )
)
def test_any_luhn_valid_card_number_is_masked_in_logs_and_storage(body: str) -> None:
    pan = _with_check_digit(body)
    assert mask(f"charging {pan} now") == f"charging [card ****{pan[-4:]}] now"
    assert mask_text(f"charging {pan} now") == f"charging {CARD} now"


@settings(max_examples=300, deadline=None)
@given(millis=st.integers(min_value=10**12, max_value=2 * 10**12))
def test_epoch_millisecond_timestamps_are_not_cards(millis: int) -> None:
    # 13 digits starting with 1: one in ten passes Luhn, yet no card network issues 1…
    line = f"event at {millis} committed"
    assert mask(line) == line
    assert mask_text(line) == line


def test_numbers_that_are_not_cards_are_kept() -> None:
    assert "1234567890123456" in mask("order ref 1234567890123456")  # fails Luhn
    assert "424242424242" in mask("only twelve 424242424242")  # too short
    assert mask("amount 12999 usd") == "amount 12999 usd"


def test_paygate_api_keys_and_webhook_secrets_are_masked() -> None:
    key = "pgk_live_" + secrets.token_urlsafe(24)
    test_key = "pgk_test_" + secrets.token_urlsafe(24)
    whsec = "whsec_" + secrets.token_urlsafe(24)
    out = mask(f"created {key} and {test_key}; signing with {whsec}")
    for secret in (key, test_key, whsec):
        assert secret.split("_", 2)[-1] not in out
    assert "pgk_" not in out and "whsec_" not in out  # the stored-data rule: no prefix either
    assert out.count("[redacted]") == 3


def test_ordinary_words_starting_like_a_key_prefix_are_kept() -> None:
    assert mask("skipping the retry; risk_score=3") == "skipping the retry; risk_score=3"
