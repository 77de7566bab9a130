"""Free text is trimmed and bounded, and control characters are refused before they reach SQL."""

import pytest
from pydantic import BaseModel, ValidationError

from paygate_common.text import Description, PersonName


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
