"""The OpenAPI document: valid 3.1, in step with the routes, and true of a real server
(schemathesis fuzzes a real ``twistd`` process and checks every answer against it)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31
from treq.testing import StubTreq
from twisted.internet.task import Clock

from leaderboard.metrics import Metrics
from leaderboard.metrics import install as install_metrics
from leaderboard.resources import AppContext, build_app, health, openapi
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore
from tests.harness.server import ServerProcess
from tests.test_api import Api, done

KEY = "openapi-test-key-0123456789"
#: Examples per operation and mode: enough to reach every documented answer, small enough
#: for the whole fuzzing run to take well under a minute.
EXAMPLES = 30
DOC = openapi.document()
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOC["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
]
#: Operations with inputs, for negative fuzzing (invalid data must get a 4xx).
WITH_INPUTS = [
    (m, p)
    for m, p in OPERATIONS
    if "requestBody" in DOC["paths"][p][m.lower()] or DOC["paths"][p][m.lower()].get("parameters")
]


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(s.start())
    done(seed_demo(s))
    yield s
    done(s.stop())


def full_app(store: SqliteStore) -> Any:
    ctx = AppContext(
        store=store,
        clock=Clock(),
        extra_routes=[
            functools.partial(health.install, readiness=lambda: None),
            functools.partial(install_metrics, metrics=Metrics(Clock())),
            openapi.install,
        ],
    )
    return build_app(ctx)


def test_document_is_valid_openapi_31() -> None:
    validator = jsonschema_rs.validator_for(OPENAPI_31)
    errors = [str(e) for e in validator.iter_errors(DOC)]
    assert errors == []
    assert DOC["openapi"].startswith("3.1")



def component_validator(name: str) -> Any:
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": DOC["components"],
            "$ref": f"#/components/schemas/{name}",
        }
    )


def test_component_schemas_describe_real_answers(store: SqliteStore) -> None:
    api = Api(StubTreq(full_app(store).resource()))
    _, board = api.call("GET", "/boards/demo/")
    _, player = api.call("GET", "/boards/demo/players/stan/")
    _, boards = api.call("GET", "/boards/?limit=1")
    _, error = api.call("GET", "/boards/nope/")
    assert component_validator("Board").is_valid(board)
    assert component_validator("Player").is_valid(player)
    assert component_validator("BoardList").is_valid(boards)
    assert component_validator("Error").is_valid(error)
    assert not component_validator("Board").is_valid(player)
    assert not component_validator("Name").is_valid("bell\u0007")
    assert not component_validator("Name").is_valid("x" * 65)
    assert component_validator("Name").is_valid("Zoë 🎲")
    assert not component_validator("Id").is_valid("a/b")


def test_every_route_documented_and_every_path_routed(store: SqliteStore) -> None:
    app = full_app(store)
    routed: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "{").replace(">", "}")
        routed.setdefault(path, set()).update(m for m in rule.methods if m != "HEAD")
    documented = {
        path: {m.upper() for m in item if m != "parameters"} for path, item in DOC["paths"].items()
    }
    assert routed == documented


def test_path_parameters_match_templates() -> None:
    for path, item in DOC["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_writes_document_auth_and_created_location() -> None:
    for method, path in OPERATIONS:
        op = DOC["paths"][path][method.lower()]
        codes = set(op["responses"])
        assert "405" in codes
        if method != "GET":
            assert {"401", "403", "503"} <= codes, (method, path)
            assert {"bearerAuth", "apiKey"} & {k for s in op["security"] for k in s}
        if "requestBody" in op:
            assert {"400", "413", "415"} <= codes, (method, path)
        if "201" in codes:
            assert op["responses"]["201"]["headers"]["Location"]["required"] is True
    board = DOC["paths"]["/boards/{board}/"]["get"]["responses"]
    assert set(board["200"]["content"]) == {"application/json", "text/event-stream", "text/html"}
    assert {"404", "406", "503"} <= set(board)


def test_served_document(store: SqliteStore) -> None:
    api = Api(StubTreq(full_app(store).resource()))
    resp, data = api.call("GET", "/openapi.json")
    assert resp.code == 200
    assert data == json.loads(json.dumps(DOC))


# -- schemathesis against a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    tmp = tmp_path_factory.mktemp("openapi")
    proc = ServerProcess(
        tmp,
        ["--database-url", f"sqlite:///{tmp}/lb.sqlite3"],
        env={"LEADERBOARD_API_KEYS": KEY},
    ).start()
    try:
        proc.wait_for_line(r"demo board ready")
        schema = schemathesis.openapi.from_url(proc.url + "/openapi.json")
        yield proc.url, schema
    finally:
        proc.kill()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz(
    live: tuple[str, Any],
    method: str,
    path: str,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None = None,
) -> None:
    url, schema = live
    operation = schema[path][method]
    # The event stream never ends: ask for JSON (or anything else the route has) only.
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json, */*;q=0.1"}
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=10)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_positive(live: tuple[str, Any], method: str, path: str) -> None:
    fuzz(live, method, path, GenerationMode.POSITIVE)


#: Not DELETE: the demo board and its players must survive for the other operations.
ON_DEMO = [(m, p) for m, p in OPERATIONS if "{board}" in p and m != "DELETE"]


@pytest.mark.parametrize(("method", "path"), ON_DEMO, ids=[f"{m} {p}" for m, p in ON_DEMO])
def test_fuzz_on_existing_players(live: tuple[str, Any], method: str, path: str) -> None:
    # Random ids are almost never found: also fuzz the rest of the request on the demo board.
    names = {"board": "demo", "player": "stan"}
    fixed = {k: v for k, v in names.items() if "{" + k + "}" in path}
    fuzz(live, method, path, GenerationMode.POSITIVE, fixed)
    op = DOC["paths"][path][method.lower()]
    if "requestBody" in op or any(p["in"] != "path" for p in op.get("parameters", [])):
        fuzz(live, method, path, GenerationMode.NEGATIVE, fixed)


@pytest.mark.parametrize(("method", "path"), WITH_INPUTS, ids=[f"{m} {p}" for m, p in WITH_INPUTS])
def test_fuzz_negative(live: tuple[str, Any], method: str, path: str) -> None:
    fuzz(live, method, path, GenerationMode.NEGATIVE)


def test_fuzz_without_a_key_is_refused(live: tuple[str, Any]) -> None:
    url, schema = live
    operation = schema["/boards/"]["POST"]
    seen: set[int] = set()

    @settings(max_examples=10, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=url, checks=CHECKS, timeout=10)
        seen.add(response.status_code)

    run()
    assert seen <= {401, 413, 415} and 401 in seen
