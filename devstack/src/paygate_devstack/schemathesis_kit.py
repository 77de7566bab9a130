"""One Schemathesis run every service's test calls: every check, both generation modes, bounded.

`schemathesis.pytest.from_fixture` breaks on pytest 9 (`Function._nodeid`), so each operation's
strategy is driven by Hypothesis directly; failures are collected across all operations (not
raised at the first) so one run shows everything a spec gets wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation import GenerationMode

# `--checks all`: response schema, status code, content type and header conformance, negative
# data rejected, positive data accepted, missing required headers, unsupported methods (405 and
# its Allow header), ignored auth, use-after-free, resource availability, object-level authz.
load_all_checks()
ALL_CHECKS: list[Any] = list(CHECKS.get_all())

HeadersFor = Callable[[Any], dict[str, str]]


@dataclass
class FuzzReport:
    """What the run sent and every distinct check failure, by operation."""

    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)
    operations: int = 0

    def add_failure(self, label: str, message: str) -> None:
        seen = self.failures.setdefault(label, [])
        first_line = message.strip().splitlines()[0] if message.strip() else message
        if len(seen) < 5 and all(first_line not in s for s in seen):
            seen.append(message.strip()[:1500])

    def summary(self) -> str:
        lines = [f"{self.calls} calls over {self.operations} operations; statuses {self.statuses}"]
        for label, messages in sorted(self.failures.items()):
            lines.append(f"--- {label}")
            lines.extend(messages)
        return "\n".join(lines)


def fuzz_openapi(
    base_url: str,
    *,
    spec_url: str | None = None,
    headers_for: HeadersFor | None = None,
    max_examples: int = 15,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    include: Callable[[Any], bool] | None = None,
    checks: list[Any] | None = None,
    timeout: float = 30,
) -> FuzzReport:
    """Run every check against every operation of the document at `spec_url`.

    `headers_for(case)` gives the headers a case is sent with (credentials that get generated
    bodies past authentication into domain code); a case that generated its own Authorization
    keeps it.
    """
    schema = schemathesis.openapi.from_url(spec_url or f"{base_url}/openapi.json")
    report = FuzzReport()
    run_checks = checks if checks is not None else ALL_CHECKS
    for result in schema.get_all_operations():
        operation = result.ok()
        if include is not None and not include(operation):
            continue
        report.operations += 1
        for mode in modes:
            label = f"{operation.method.upper()} {operation.path} [{mode.value}]"

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=max_examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                # no shrinking: every failure is recorded as found, and the run stays bounded
                phases=[Phase.explicit, Phase.generate],
            )
            def one_case(case: Any, label: str = label) -> None:
                headers: dict[str, str] = {}
                if headers_for is not None and not (
                    case.headers and "Authorization" in case.headers
                ):
                    headers = headers_for(case)
                report.calls += 1
                try:
                    response = case.call_and_validate(
                        base_url=base_url, headers=headers, checks=run_checks, timeout=timeout
                    )
                except (AssertionError, BaseExceptionGroup) as exc:  # a check failed
                    details = (
                        "\n".join(str(e) for e in exc.exceptions)
                        if isinstance(exc, BaseExceptionGroup)
                        else str(exc)
                    )
                    report.add_failure(label, f"{details}\n{case.as_curl_command(headers)}")
                    return
                report.statuses[response.status_code] += 1

            one_case()
    return report
