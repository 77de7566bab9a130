"""List filters: a date-time filter is RFC 3339, never an epoch number."""

from __future__ import annotations

import pytest


def test_a_date_time_filter_takes_rfc_3339_and_refuses_epoch_numbers() -> None:
    from pydantic import TypeAdapter, ValidationError

    from paygate_common.pagination import IsoDateTime

    adapter = TypeAdapter(IsoDateTime)
    assert adapter.validate_python("2026-12-01T00:00:00Z").year == 2026
    for number in ("0.1", "1700000000"):  # pydantic alone reads these as epoch seconds
        with pytest.raises(ValidationError):
            adapter.validate_python(number)
