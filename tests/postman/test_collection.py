"""The Postman collection is generated, complete against the gateway's OpenAPI, and runnable."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from postman_support import (
    ROOT,
    build_collection,
    merged_openapi,
    request_items,
    route_of,
    routes_of,
    uncovered_routes,
)

# Routes the gateway documents that the collection deliberately does not call, with the reason.
# Empty: every documented route is called at least once.
EXCLUDED: dict[str, str] = {}

FOLDER_ORDER = [
    "Start here",
    "Auth",
    "Profile & sessions",
    "API keys",
    "Payment methods",
    "Orders",
    "Payments",
    "Providers",
    "Webhooks",
    "Notifications",
    "Transactions & balance",
    "Exchange rates",
    "Admin",
]


@pytest.fixture(scope="module")
def gateway_routes() -> set[str]:
    return routes_of(merged_openapi())


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(build_collection.COLLECTION_FILE.read_text())
    return data


def script(item: dict[str, Any], listen: str) -> str:
    return "\n".join(
        line for e in item.get("event", []) if e["listen"] == listen for line in e["script"]["exec"]
    )


def test_committed_json_is_the_generators_output() -> None:
    assert build_collection.COLLECTION_FILE.read_text() == build_collection.render(
        build_collection.build_collection()
    ), "run .venv/bin/python tools/postman/build_collection.py"
    assert build_collection.ENVIRONMENT_FILE.read_text() == build_collection.render(
        build_collection.build_environment()
    )
    assert build_collection.main(["--check"]) == 0


def test_every_documented_route_is_called(
    collection: dict[str, Any], gateway_routes: set[str]
) -> None:
    assert len(gateway_routes) > 20  # the in-process merge found the services
    missing = uncovered_routes(collection, gateway_routes) - set(EXCLUDED)
    assert not missing, f"routes without a request in the collection: {sorted(missing)}"


def test_exclusions_name_only_routes_that_exist(gateway_routes: set[str]) -> None:
    stale = set(EXCLUDED) - gateway_routes
    assert not stale, f"excluded routes the gateway does not document: {sorted(stale)}"


def test_removing_a_request_makes_the_completeness_check_fail(
    collection: dict[str, Any], gateway_routes: set[str]
) -> None:
    items = request_items(collection)
    callers: dict[str, list[str]] = {}
    for item in items:
        route = route_of(item, gateway_routes)
        if route is not None:
            callers.setdefault(route, []).append(item["name"])
    lone = sorted(route for route, names in callers.items() if len(names) == 1)
    assert lone, "some route is called by exactly one request"
    for route in lone:
        trimmed = copy.deepcopy(collection)
        for folder in trimmed["item"]:
            folder["item"] = [i for i in folder["item"] if route_of(i, gateway_routes) != route]
        assert uncovered_routes(trimmed, gateway_routes) == {route}


def test_a_route_added_later_without_a_request_is_reported(
    collection: dict[str, Any],
) -> None:
    doc = merged_openapi()
    doc["paths"]["/api/v1/orders/{order_id}/shipments"] = {"post": {"responses": {}}}
    assert uncovered_routes(collection, routes_of(doc)) == {"POST /api/v1/orders/{}/shipments"}


def test_folders_in_the_order_a_newcomer_goes(collection: dict[str, Any]) -> None:
    assert collection["info"]["schema"] == build_collection.SCHEMA
    assert "v2.1.0" in collection["info"]["schema"]
    assert [f["name"] for f in collection["item"]] == FOLDER_ORDER


def test_every_request_asserts_its_status_and_has_a_saved_example(
    collection: dict[str, Any],
) -> None:
    for item in request_items(collection):
        tests = script(item, "test")
        assert "pm.test('answers " in tests and "pm.response.code" in tests, item["name"]
        assert item["response"], f"{item['name']} has no saved example"
        example = item["response"][0]
        assert example["code"] and example["originalRequest"]["method"], item["name"]


def test_error_answers_are_checked_as_problem_json(collection: dict[str, Any]) -> None:
    bad_input = 0
    for _, req in build_collection.all_requests():
        if all(400 <= s < 500 for s in req.status):
            assert req.problem, f"{req.name}: a 4xx answer must be checked as problem+json"
        if 422 in req.status:
            bad_input += 1
    assert bad_input >= 10
    for item in request_items(collection):
        if "problem+json" in script(item, "test"):
            assert item["response"][0]["code"] >= 400, item["name"]


def test_ids_are_captured_never_pasted(collection: dict[str, Any]) -> None:
    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    for item in request_items(collection):
        raw = json.dumps(item["request"])
        for found in uuid_re.findall(raw):
            # the one id used on purpose: "that does not exist"
            assert found == build_collection.MISSING_ID, item["name"]
    signup = next(i for i in request_items(collection) if i["name"] == "Sign up")
    assert "Math.random()" in script(signup, "prerequest")


def test_mutating_requests_send_an_idempotency_key(collection: dict[str, Any]) -> None:
    # Sign-in style calls and provider callbacks are not the merchant's mutations.
    exempt = ("/auth/", "/webhooks/stripe", "/webhooks/paypal", "/webhooks/sslcommerz")
    for item in request_items(collection):
        request = item["request"]
        if request["method"] not in ("POST", "PUT", "PATCH"):
            continue
        if any(x in request["url"]["raw"] for x in exempt):
            continue
        keys = [h["value"] for h in request["header"] if h["key"] == "Idempotency-Key"]
        assert keys, f"{item['name']} sends no Idempotency-Key"
        assert keys[0] == "{{$guid}}" or keys[0] == "{{order_key}}", item["name"]


def test_asynchronous_states_are_polled_with_a_bound(collection: dict[str, Any]) -> None:
    polled = [i for i in request_items(collection) if "setNextRequest" in script(i, "test")]
    names = {i["name"] for i in polled}
    assert {"Wait until the order is paid", "Wait until it requires capture"} <= names
    for item in polled:
        tests = script(item, "test")
        assert re.search(r"tries < \d+", tests), item["name"]
        assert "pm.execution.setNextRequest(pm.info.requestId)" in tests


def test_the_environment_names_the_gateway_and_the_bootstrap_admin() -> None:
    env = json.loads(build_collection.ENVIRONMENT_FILE.read_text())
    values = {v["key"]: v["value"] for v in env["values"]}
    assert values["base_url"].endswith("/api/v1")
    assert {"admin_email", "admin_password"} <= set(values)


def test_admin_requests_use_the_admin_token(collection: dict[str, Any]) -> None:
    admin = next(f for f in collection["item"] if f["name"] == "Admin")
    first = admin["item"][0]
    assert "{{admin_email}}" in first["request"]["body"]["raw"]
    for item in admin["item"]:
        url = item["request"]["url"]["raw"]
        if "/admin/" in url and item["name"] != "A customer may not read the configuration":
            assert item["request"]["auth"]["bearer"][0]["value"] == "{{admin_token}}", item["name"]


def test_node_modules_is_not_committed() -> None:
    assert "node_modules/" in (ROOT / ".gitignore").read_text().split()
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/newman"]["version"] == "6.2.2"


def test_every_script_is_valid_javascript(collection: dict[str, Any], tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for newman (Node 20)")
    scripts = [e["script"]["exec"] for e in collection.get("event", [])]
    for item in request_items(collection):
        scripts += [e["script"]["exec"] for e in item["event"]]
    source = tmp_path / "scripts.js"
    source.write_text("\n".join("(function () {\n" + "\n".join(s) + "\n});" for s in scripts))
    result = subprocess.run(
        [node, "--check", str(source)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
