"""Free-text request fields: trimmed, bounded, and free of control characters PostgreSQL rejects."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# NUL cannot be stored in a PostgreSQL text column at all, and the other C0/C1 controls have no
# business in a name or a description (they break logs, emails and CSV exports).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


NoControlCharacters = AfterValidator(_no_control_characters)

# A person's or a merchant's name.
PersonName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoControlCharacters
]
# What an order or a payment is for, shown on receipts.
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500), NoControlCharacters
]
