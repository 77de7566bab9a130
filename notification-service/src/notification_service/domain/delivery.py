"""Delivery rules that need no I/O: how long a failed notification waits before the next try."""

from __future__ import annotations


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Wait after the `attempt`-th failure: base, 2·base, 4·base, … never more than `cap`."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))
