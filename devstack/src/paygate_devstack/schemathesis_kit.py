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
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance as positive_data_acceptance_check,
)

from paygate_common.errors import BUSINESS_RULE_CODES

# `--checks all`: response schema, status code, content type and header conformance, negative
# data rejected, positive data accepted, missing required headers, unsupported methods (405 and
# its Allow header), ignored auth, use-after-free, resource availability, object-level authz.
load_all_checks()
_SCHEMATHESIS_POSITIVE_DATA_ACCEPTANCE = positive_data_acceptance_check


def positive_data_acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' check, except that a schema-valid request may get a status the operation
    documents as a business rule (`x-business-rule-codes`, see `paygate_common.errors.
    business_rule`) when the problem's `code` is one of the codes listed there: a minimum charge
    per currency or a token the provider does not know is a documented answer, not a spec lie.
    Any other code with that status (a `validation_error`, say) still fails."""
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_positive:
        codes = _business_rule_codes(case.operation).get(response.status_code)
        if codes and _problem_code(response) in codes:
            return None
    result: bool | None = _SCHEMATHESIS_POSITIVE_DATA_ACCEPTANCE(ctx, response, case)
    return result


def _business_rule_codes(operation: Any) -> dict[int, frozenset[str]]:
    responses = (operation.definition.raw or {}).get("responses") or {}
    return {
        int(status): frozenset(doc[BUSINESS_RULE_CODES])
        for status, doc in responses.items()
        if str(status).isdigit() and isinstance(doc, dict) and doc.get(BUSINESS_RULE_CODES)
    }


def _problem_code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


ALL_CHECKS: list[Any] = [
    positive_data_acceptance if check is _SCHEMATHESIS_POSITIVE_DATA_ACCEPTANCE else check
    for check in CHECKS.get_all()
]
assert positive_data_acceptance in ALL_CHECKS, "schemathesis renamed positive_data_acceptance"

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
    opaque_query_params: tuple[str, ...] = ("cursor",),
) -> FuzzReport:
    """Run every check against every operation of the document at `spec_url`.

    `headers_for(case)` gives the headers a case is sent with (credentials that get generated
    bodies past authentication into domain code; the auth checks send their own variants).
    Positive cases get a fresh Idempotency-Key each. `opaque_query_params` (pagination cursors) are valid only as a previous page's
    `next_cursor`, which no generator can produce: positive cases drop them, negative cases
    that carry one are not sent (each service's pagination tests cover real cursors).
    There is no exemption list: a rule the schema cannot state is documented on the route as a
    business rule (`paygate_common.errors.business_rule`), which the positive check honours.
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


# The operator user-service bootstraps for every fuzzed stack: admin routes get an admin.
FUZZ_ADMIN_EMAIL = "fuzz-ops@example.com"
FUZZ_ADMIN_PASSWORD = "fuzz-operator-passphrase-7"


def sign_in_headers(
    user_service_url: str,
    email: str = FUZZ_ADMIN_EMAIL,
    password: str = FUZZ_ADMIN_PASSWORD,
) -> dict[str, str]:
    """`Authorization` of an existing account (by default the fuzzed stack's operator)."""
    import httpx

    with httpx.Client(base_url=user_service_url, timeout=30) as client:
        signin = client.post("/auth/signin", json={"email": email, "password": password})
        signin.raise_for_status()
        return {"Authorization": f"Bearer {signin.json()['access_token']}"}


def service_token_headers(
    stack: Any, audience: str, caller: str = "payment-service"
) -> dict[str, str]:
    """`Authorization` of a service token from `caller` to `audience`, for `/internal/*`."""
    from typing import ClassVar

    from paygate_common.auth import issue_service_token
    from paygate_common.settings import ServiceSettings

    class Caller(ServiceSettings):
        service_name: ClassVar[str] = caller

    token = issue_service_token(
        Caller(service_token_secret=stack.env["SERVICE_TOKEN_SECRET"]),
        audience_service=audience,
        ttl_seconds=3600,
    )
    return {"Authorization": f"Bearer {token}"}


def headers_by_route(
    *,
    customer: dict[str, str] | None = None,
    admin: dict[str, str] | None = None,
    service: dict[str, str] | None = None,
) -> HeadersFor:
    """Credentials by path: `/internal/*` a service token, `/admin/*` the operator, the rest a
    customer (or the operator where no customer is given)."""

    def pick(case: Any) -> dict[str, str]:
        path: str = case.path
        if path.startswith("/internal/") and service is not None:
            return service
        if path.startswith("/admin/") and admin is not None:
            return admin
        return customer or admin or {}

    return pick


@contextlib.contextmanager
def isolated_stack(
    stack: Any, *names: str, env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[dict[str, Any]]:
    """user-service (it issues the JWTs, holds payment methods and bootstraps the operator
    `FUZZ_ADMIN_EMAIL`) and the services `names`, on free ports and one fresh database, pointed
    at each other and at nothing else of the session; `env` (a broker of the caller's own, say)
    goes to every one. `{name: ServiceProcess}`, stopped on exit.

    The session's reserved ports, localstripe's webhook registration and the session's log
    files stay untouched (logs go to a folder of this stack's own): other tests' services keep
    theirs. Migrations run one after the other, then every process starts at once.
    """
    from paygate_devstack.process import free_port
    from paygate_devstack.services import ServiceProcess, spec_for

    ports = {name: free_port() for name in ("user", *names)}
    urls = {
        **json.loads(stack.env["PAYGATE_SERVICE_URLS"]),
        **{name: f"http://127.0.0.1:{port}" for name, port in ports.items()},
    }
    merged = {
        **stack.env,
        "DATABASE_URL": stack.postgres.create_database(),
        "USER_SERVICE_BOOTSTRAP_ADMIN_EMAIL": FUZZ_ADMIN_EMAIL,
        "USER_SERVICE_BOOTSTRAP_ADMIN_PASSWORD": FUZZ_ADMIN_PASSWORD,
        "PAYGATE_SERVICE_URLS": json.dumps(urls),
        "JWKS_URL": f"{urls['user']}/.well-known/jwks.json",
        **(env or {}),
    }
    log_dir = stack.log_dir / f"isolated-{ports['user']}"
    procs = {
        name: ServiceProcess(spec_for(name), env=merged, port=port, log_dir=log_dir)
        for name, port in ports.items()
    }
    try:
        for proc in procs.values():
            proc.migrate()
        for proc in procs.values():
            proc.start(wait=False)
        for proc in procs.values():
            proc.wait_ready(timeout)
        yield procs
    finally:
        for proc in reversed(list(procs.values())):
            proc.stop()


def assert_spec_holds(
    stack: Any,
    service: str,
    *,
    beside: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    running: dict[str, Any] | None = None,
    customer: bool = True,
    save_card: bool = False,
    admin: bool = False,
    internal_caller: str | None = None,
    max_examples: int = 12,
    min_operations: int = 1,
    calls_per_operation: int = 4,
    expect_client_errors: bool = False,
    include: Callable[[Any], bool] | None = None,
) -> FuzzReport:
    """The whole conformance test of one service's own OpenAPI, as each service declares it.

    `service` runs with user-service (and `beside`) in an `isolated_stack` with `env`, unless
    `running` (`{name: process}` of a stack the test module already holds) is given. Generated
    requests carry a fresh customer (`save_card`: with a saved test card) on public routes, the
    operator on `/admin/*` (`admin`), and `internal_caller`'s service token on `/internal/*`.
    The run must cover `min_operations`, fail no check, send `calls_per_operation` calls per
    operation and get some 2xx (and some 4xx with `expect_client_errors`).
    """
    with contextlib.ExitStack() as exits:
        procs = running or exits.enter_context(isolated_stack(stack, *beside, service, env=env))
        user = procs["user"].url
        credentials = headers_by_route(
            customer=customer_headers(user, save_card=save_card) if customer else None,
            admin=sign_in_headers(user) if admin else None,
            service=(
                service_token_headers(stack, service, caller=internal_caller)
                if internal_caller
                else None
            ),
        )
        report = fuzz_openapi(
            procs[service].url, headers_for=credentials, max_examples=max_examples, include=include
        )
    assert report.operations >= min_operations, report.summary()
    assert not report.failures, report.summary()
    assert report.calls >= calls_per_operation * report.operations, report.summary()
    assert any(200 <= s < 300 for s in report.statuses), report.summary()
    if expect_client_errors:
        assert any(400 <= s < 500 for s in report.statuses), report.summary()
    return report
