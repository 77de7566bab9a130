"""Free-text request fields: trimmed, bounded, and free of the control characters that break things.

Two kinds of field. **Single-line** (names, descriptions, subjects, URLs) refuse every C0 and C1
control character, TAB, CR and LF included, and the Unicode line and paragraph separators: a CR/LF
in a `full_name` once became a header line in every email to that user and made it unsendable.
**Multi-line** (message bodies, notes) additionally allow `\n` — where a person presses Enter; a
browser's CRLF is normalised to LF — and nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

# C0 (incl. TAB, LF, CR), DEL, C1 (incl. NEL), LINE SEPARATOR, PARAGRAPH SEPARATOR. NUL cannot be
# stored in a PostgreSQL text column at all; the rest break logs, email headers and CSV exports.
_SINGLE_LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MULTI_LINE_FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


# The same rules in the OpenAPI document, so a client (or a fuzzer) knows what is refused.
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
SINGLE_LINE_PATTERN = f"^[^{_CONTROLS}]*$"
# ... and with something besides whitespace (a required name is not blank once trimmed)
NON_BLANK_SINGLE_LINE_PATTERN = f"^[^{_CONTROLS}]*[^\\s{_CONTROLS}][^{_CONTROLS}]*$"
MULTI_LINE_PATTERN = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]*$"
_SINGLE_LINE_DOC = Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})
_NON_BLANK_DOC = Field(json_schema_extra={"pattern": NON_BLANK_SINGLE_LINE_PATTERN})
_MULTI_LINE_DOC = Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN})


def _single_line(value: str) -> str:
    if _SINGLE_LINE_FORBIDDEN.search(value):
        raise ValueError("must be one line without control characters (no tab, CR or LF)")
    return value


def _normalise_newlines(value: object) -> object:
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def _multi_line(value: str) -> str:
    if _MULTI_LINE_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters other than line breaks")
    return value


SingleLine = AfterValidator(_single_line)
NormaliseNewlines = BeforeValidator(_normalise_newlines)
MultiLine = AfterValidator(_multi_line)
# The old name: what every single-line field refuses.
NoControlCharacters = SingleLine

# Any one-line text: `Annotated[str, StringConstraints(max_length=...), SingleLine]`.
SingleLineText = Annotated[
    str, StringConstraints(strip_whitespace=True), SingleLine, _SINGLE_LINE_DOC
]
# Text a person may break into lines (`\n` only).
MultiLineText = Annotated[
    str, NormaliseNewlines, StringConstraints(max_length=20_000), MultiLine, _MULTI_LINE_DOC
]

# A person's or a merchant's name.
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    SingleLine,
    _NON_BLANK_DOC,
]
# What an order or a payment is for, shown on receipts and statements.
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500), SingleLine, _SINGLE_LINE_DOC
]
# An email subject or a template's subject line (it becomes a header).
Subject = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=998),
    SingleLine,
    _NON_BLANK_DOC,
]
# A URL typed by a merchant (webhook endpoint, return URL); pair it with an URL type for syntax.
UrlText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048),
    SingleLine,
    _NON_BLANK_DOC,
]


def has_control_characters(value: str, *, multi_line: bool = False) -> bool:
    """For code that checks text outside pydantic (templates rendered from stored values)."""
    pattern = _MULTI_LINE_FORBIDDEN if multi_line else _SINGLE_LINE_FORBIDDEN
    return pattern.search(value) is not None
