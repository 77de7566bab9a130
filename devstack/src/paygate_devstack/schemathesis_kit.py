"""One Schemathesis run every service's test calls: every check, both generation modes, bounded.

`schemathesis.pytest.from_fixture` breaks on pytest 9 (`Function._nodeid`), so each operation's
strategy is driven by Hypothesis directly; failures are collected across all operations (not
raised at the first) so one run shows everything a spec gets wrong.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Ok
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
    # Failures of operations named in `known_violations`: reported, owned by someone else.
    known: dict[str, list[str]] = field(default_factory=dict)

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
    opaque_query_params: tuple[str, ...] = ("cursor",),
    known_violations: dict[str, str] | None = None,
) -> FuzzReport:
    """Run every check against every operation of the document at `spec_url`.

    `headers_for(case)` gives the headers a case is sent with (credentials that get generated
    bodies past authentication into domain code; the auth checks send their own variants).
    Positive cases get a fresh Idempotency-Key each. `opaque_query_params` (pagination cursors) are valid only as a previous page's
    `next_cursor`, which no generator can produce: positive cases drop them, negative cases
    that carry one are not sent (each service's pagination tests cover real cursors).
    `known_violations` maps `"POST /path [positive]"` to why it still fails (a fix owned
    elsewhere): its failures land in `report.known`, everything else in `report.failures`.
    """
    schema = schemathesis.openapi.from_url(spec_url or f"{base_url}/openapi.json")
    report = FuzzReport()
    run_checks = checks if checks is not None else ALL_CHECKS
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # a part of the document schemathesis cannot read
            raise AssertionError(f"invalid OpenAPI document: {result.err()}")
        operation = result.ok()
        if include is not None and not include(operation):
            continue
        report.operations += 1
        for mode in modes:
            _run_operation(
                operation,
                mode,
                report,
                base_url,
                headers_for,
                max_examples,
                run_checks,
                timeout,
                opaque_query_params,
            )
    for label in known_violations or {}:
        if label in report.failures:
            report.known[label] = report.failures.pop(label)
    return report


def _run_operation(
    operation: Any,
    mode: GenerationMode,
    report: FuzzReport,
    base_url: str,
    headers_for: HeadersFor | None,
    max_examples: int,
    run_checks: list[Any],
    timeout: float,
    opaque: tuple[str, ...],
) -> None:
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
    def one_case(case: Any) -> None:
        if case.query and any(p in case.query for p in opaque):
            if mode is GenerationMode.NEGATIVE:
                reject()
            case.query = {k: v for k, v in case.query.items() if k not in opaque}
        if mode is GenerationMode.POSITIVE and case.headers and "Idempotency-Key" in case.headers:
            # A generated key repeats across cases with other bodies (422 reused, by design);
            # key reuse is the idempotency tests' subject, here each request is a new one.
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        headers = headers_for(case) if headers_for is not None else {}
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

    try:
        one_case()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): nothing to test
        if mode is not GenerationMode.NEGATIVE:
            raise


def customer_headers(user_service_url: str, *, save_card: bool = True) -> dict[str, str]:
    """Sign a fresh customer up at user-service (optionally with a saved test card) and return
    their `Authorization` header: generated requests then get past authentication."""
    import secrets

    import httpx

    email = f"fuzz.{uuid.uuid4().hex[:8]}@example.com"
    password = "fuzzing-Password-" + secrets.token_hex(4)
    with httpx.Client(base_url=user_service_url, timeout=30) as client:
        client.post(
            "/auth/signup", json={"email": email, "password": password, "full_name": "Fuzz"}
        ).raise_for_status()
        signin = client.post("/auth/signin", json={"email": email, "password": password})
        signin.raise_for_status()
        headers = {"Authorization": f"Bearer {signin.json()['access_token']}"}
        if save_card:
            client.post(
                "/users/me/payment-methods",
                json={"provider": "stripe", "token": "pm_card_visa"},
                headers=headers,
            ).raise_for_status()
    return headers


@contextlib.contextmanager
def service_behind_user_service(
    stack: Any, name: str, env: dict[str, str] | None = None
) -> Iterator[tuple[Any, Any]]:
    """`(user, service)`: user-service (it issues the JWTs and holds payment methods) and the
    service under test, on free ports and a fresh database, pointed at each other."""
    from paygate_devstack.process import free_port

    database = stack.postgres.create_database()
    user = stack.start_service("user", env={"DATABASE_URL": database}, port=free_port())
    try:
        if name == "user":
            yield user, user
            return
        urls = {**json.loads(stack.env["PAYGATE_SERVICE_URLS"]), "user": user.url}
        service = stack.start_service(
            name,
            env={
                "DATABASE_URL": database,
                "JWKS_URL": f"{user.url}/.well-known/jwks.json",
                "PAYGATE_SERVICE_URLS": json.dumps(urls),
                **(env or {}),
            },
            port=free_port(),
        )
        try:
            yield user, service
        finally:
            service.stop()
    finally:
        user.stop()
