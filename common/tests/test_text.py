"""Free text is trimmed and bounded, and control characters are refused before they reach SQL."""

import pytest
from pydantic import BaseModel, ValidationError

from paygate_common.text import (
    Description,
    MultiLineText,
    PersonName,
    Subject,
    has_control_characters,
)


class Profile(BaseModel):
    full_name: PersonName
    note: Description = ""


def test_text_is_trimmed() -> None:
    assert Profile(full_name="  Ann Lee ").full_name == "Ann Lee"


@pytest.mark.parametrize(
    "bad", ["\x00", "Ann\x00Lee", "bell\x07", "esc\x1b[31m", "del\x7f", "", " ", "x" * 201]
)
def test_control_characters_empty_and_long_values_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Profile(full_name=bad)


def test_descriptions_are_bounded_too() -> None:
    with pytest.raises(ValidationError):
        Profile(full_name="Ann", note="\x00")
    with pytest.raises(ValidationError):
        Profile(full_name="Ann", note="x" * 501)


def test_ordinary_unicode_is_kept() -> None:
    assert Profile(full_name="Zoë Ørsted-Łukasz").full_name == "Zoë Ørsted-Łukasz"


@pytest.mark.parametrize(
    "bad",
    [
        "Eve\r\nBcc: x@example.com",
        "Eve\nLee",
        "Eve\rLee",
        "Eve\tLee",
        "next\x85line",  # C1 NEL
        "csi\x9b31m",
        "line\u2028separator",
        "para\u2029graph",
    ],
)
def test_single_line_fields_refuse_tab_cr_lf_and_every_other_control(bad: str) -> None:
    with pytest.raises(ValidationError):
        Profile(full_name=bad)
    with pytest.raises(ValidationError):
        Profile(full_name="Ann", note=bad)


def test_letters_and_emoji_from_any_script_are_fine() -> None:
    name = "Zoë 李小龍 Ω 🎉👩🏽‍💻"
    assert Profile(full_name=name).full_name == name


class Message(BaseModel):
    subject: Subject
    body: MultiLineText


def test_multi_line_text_allows_line_breaks_only() -> None:
    msg = Message(subject="Receipt", body="Hello,\r\nyour order\nis paid.")
    assert msg.body == "Hello,\nyour order\nis paid."  # a browser's CRLF becomes LF
    for bad in ("tab\there", "bare\rCR", "bell\x07", "nul\x00", "ls\u2028"):
        with pytest.raises(ValidationError):
            Message(subject="Receipt", body=bad)
    with pytest.raises(ValidationError):
        Message(subject="Receipt\nBcc: x@example.com", body="hi")


def test_has_control_characters_matches_the_types() -> None:
    assert has_control_characters("a\nb")
    assert not has_control_characters("a\nb", multi_line=True)
    assert has_control_characters("a\tb", multi_line=True)
