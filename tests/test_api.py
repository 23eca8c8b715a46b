"""The REST contract, in memory: the real Klein resource driven through treq's StubTreq."""

from __future__ import annotations

import json
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from leaderboard.model import MAX_SCORE
from leaderboard.resources import AppContext, build_app
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore


def done(d: Deferred[Any]) -> Any:
    """The result of a Deferred that must already have fired (everything here is in memory)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


class Api:
    def __init__(self, stub: StubTreq) -> None:
        self.stub = stub

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[Any, Any]:
        h = {k.encode(): [v.encode()] for k, v in (headers or {}).items()}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h.setdefault(b"Content-Type", [b"application/json"])
        resp = done(self.stub.request(method, "http://test" + path, data=body, headers=h))
        raw = done(self.stub.content(resp))
        ctype = resp.headers.getRawHeaders(b"content-type", [b""])[0]
        data = json.loads(raw) if ctype.startswith(b"application/json") else raw
        return resp, data


@pytest.fixture
def store() -> Any:
    store = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(store.start())
    done(seed_demo(store))
    yield store
    done(store.stop())


@pytest.fixture
def api(store: SqliteStore) -> Any:
    app = build_app(AppContext(store=store, clock=Clock()))
    return Api(StubTreq(app.resource()))


def assert_error(resp: Any, data: Any, status: int, code: str) -> None:
    assert resp.code == status, (resp.code, data)
    assert resp.headers.getRawHeaders(b"content-type")[0].startswith(b"application/json")
    assert data["error"]["code"] == code
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    assert "Traceback" not in json.dumps(data)


def test_demo_board_top5(api: Api) -> None:
    resp, data = api.call("GET", "/boards/demo/")
    assert resp.code == 200
    assert data["id"] == "demo" and data["name"] == "Demo"
    assert [(p["name"], p["score"], p["rank"]) for p in data["players"]] == [
        ("Stan", 12, 1),
        ("Kyle", 10, 2),
        ("Kenny", 8, 3),
        ("Eric", 6, 4),
        ("Butters", 4, 5),
    ]
    assert set(data["players"][0]) == {"id", "name", "score", "rank"}


@pytest.mark.parametrize("path", ["/boards/demo", "/boards/demo/"])
def test_with_and_without_slash(api: Api, path: str) -> None:
    resp, data = api.call("GET", path)
    assert resp.code == 200 and data["id"] == "demo"


def test_limit(api: Api) -> None:
    _, data = api.call("GET", "/boards/demo/?limit=2")
    assert [p["id"] for p in data["players"]] == ["stan", "kyle"]
    for bad in ["0", "101", "x", "-1", "1.5", "", "9999"]:
        resp, data = api.call("GET", f"/boards/demo/?limit={bad}")
        assert_error(resp, data, 400, "invalid_input")


def test_accept_negotiation(api: Api) -> None:
    resp, data = api.call("GET", "/boards/demo/", headers={"Accept": "*/*"})
    assert resp.code == 200 and data["id"] == "demo"
    resp, data = api.call("GET", "/boards/demo/", headers={"Accept": "image/png"})
    assert_error(resp, data, 406, "not_acceptable")
    resp, data = api.call(
        "GET", "/boards/demo/", headers={"Accept": "text/event-stream;q=0, application/json"}
    )
    assert resp.code == 200 and data["id"] == "demo"


def test_unknown_board(api: Api) -> None:
    resp, data = api.call("GET", "/boards/nope/")
    assert_error(resp, data, 404, "not_found")


def test_score_add_default_json_and_form(api: Api) -> None:
    resp, data = api.call("POST", "/boards/demo/players/butters/score-add/")
    assert resp.code == 200
    assert data == {"id": "butters", "name": "Butters", "score": 5, "rank": 5, "board": "demo"}
    resp, data = api.call(
        "POST", "/boards/demo/players/butters/score-add/", json_body={"amount": 4}
    )
    assert (data["score"], data["rank"]) == (9, 3)
    resp, data = api.call(
        "POST",
        "/boards/demo/players/butters/score-add",
        body=b"amount=-2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.code == 200 and data["score"] == 7
    _, board = api.call("GET", "/boards/demo/")
    assert [p["id"] for p in board["players"]][:4] == ["stan", "kyle", "kenny", "butters"]


def test_curl_style_json_labelled_as_form(api: Api) -> None:
    resp, data = api.call(
        "POST",
        "/boards/demo/players/stan/score-add/",
        body=b'{"amount": 3}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.code == 200 and data["score"] == 15


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 1.5}',
        b'{"amount": true}',
        b'{"amount": "5"}',
        b'{"amount": null}',
        b'{"amount": 1000000001}',
        b'{"amount": -1000000001}',
        b'{"amount": 1e3}',
        b'{"amount": NaN}',
        b"[1]",
        b'"x"',
        b'{"amount": 1, "extra": 2}',
        b"{bad json",
        b"\xff\xfe",
    ],
)
def test_bad_amounts(api: Api, body: bytes) -> None:
    resp, data = api.call(
        "POST",
        "/boards/demo/players/stan/score-add/",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    assert_error(resp, data, 400, "invalid_input")


@pytest.mark.parametrize("form", [b"amount=1.5", b"amount=abc", b"amount=1&amount=2", b"amount="])
def test_bad_form_amounts(api: Api, form: bytes) -> None:
    resp, data = api.call(
        "POST",
        "/boards/demo/players/stan/score-add/",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(resp, data, 400, "invalid_input")


def test_unsupported_content_type(api: Api) -> None:
    resp, data = api.call(
        "POST",
        "/boards/demo/players/stan/score-add/",
        body=b"<x/>",
        headers={"Content-Type": "application/xml"},
    )
    assert_error(resp, data, 415, "unsupported_media_type")


def test_score_out_of_range(api: Api, store: SqliteStore) -> None:
    api.call("POST", "/boards/", json_body={"id": "big", "name": "Big"})
    api.call("POST", "/boards/big/players/", json_body={"id": "p", "name": "P"})
    # Bring the score next to the bound directly: 10^9 steps would take 9 million calls.
    edge = MAX_SCORE - 5
    store._db().execute("UPDATE players SET score = ? WHERE id = 'p'", (edge,))
    resp, data = api.call("POST", "/boards/big/players/p/score-add/", json_body={"amount": 6})
    assert_error(resp, data, 400, "score_out_of_range")
    resp, data = api.call("GET", "/boards/big/players/p/")
    assert data["score"] == edge
    resp, data = api.call("POST", "/boards/big/players/p/score-add/", json_body={"amount": 5})
    assert resp.code == 200 and data["score"] == MAX_SCORE


def test_score_add_unknown_player_and_board(api: Api) -> None:
    resp, data = api.call("POST", "/boards/demo/players/nobody/score-add/")
    assert_error(resp, data, 404, "not_found")
    resp, data = api.call("POST", "/boards/nope/players/stan/score-add/")
    assert_error(resp, data, 404, "not_found")


def test_get_player(api: Api) -> None:
    resp, data = api.call("GET", "/boards/demo/players/kenny/")
    assert resp.code == 200
    assert data == {"id": "kenny", "name": "Kenny", "score": 8, "rank": 3, "board": "demo"}
    resp, data = api.call("GET", "/boards/demo/players/kenny")
    assert resp.code == 200 and data["id"] == "kenny"


def test_create_board_and_player(api: Api) -> None:
    resp, data = api.call("POST", "/boards/", json_body={"name": "Chess", "id": "chess"})
    assert resp.code == 201
    assert resp.headers.getRawHeaders(b"location") == [b"/boards/chess/"]
    assert data == {"id": "chess", "name": "Chess", "order": "desc", "operator": "incr",
                    "metadata": {}, "players": []}
    resp, data = api.call("POST", "/boards/chess/players/", json_body={"name": "Magnus"})
    assert resp.code == 201
    pid = data["id"]
    assert resp.headers.getRawHeaders(b"location") == [f"/boards/chess/players/{pid}/".encode()]
    assert data == {"id": pid, "name": "Magnus", "score": 0, "rank": 1, "board": "chess"}
    resp, data = api.call("POST", "/boards/", json_body={"name": "Chess", "id": "chess"})
    assert_error(resp, data, 409, "already_exists")
    resp, data = api.call("POST", "/boards/chess/players/", json_body={"name": "M", "id": pid})
    assert_error(resp, data, 409, "already_exists")
    resp, data = api.call(
        "POST",
        "/boards/",
        body=b"name=Go",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.code == 201 and data["name"] == "Go"


def test_generated_ids_are_valid(api: Api) -> None:
    import re

    _, data = api.call("POST", "/boards/", json_body={"name": "Gen"})
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", data["id"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 65},
        {"name": "bad\nname"},
        {"name": 5},
        {"name": "ok", "id": "has space"},
        {"name": "ok", "id": "x" * 65},
        {"name": "ok", "id": ""},
        {"name": "ok", "id": "a/b"},
        {"name": "ok", "id": 7},
        {"name": "ok", "colour": "red"},
    ],
)
def test_bad_creates(api: Api, body: dict[str, Any]) -> None:
    resp, data = api.call("POST", "/boards/", json_body=body)
    assert_error(resp, data, 400, "invalid_input")
    resp, data = api.call("POST", "/boards/demo/players/", json_body=body)
    assert_error(resp, data, 400, "invalid_input")


def test_unicode_names(api: Api) -> None:
    resp, data = api.call("POST", "/boards/", json_body={"name": "Échecs ♞ 象棋"})
    assert resp.code == 201 and data["name"] == "Échecs ♞ 象棋"


def test_bad_ids_in_path(api: Api) -> None:
    resp, data = api.call("GET", "/boards/" + "x" * 65 + "/")
    assert_error(resp, data, 400, "invalid_input")
    resp, data = api.call("GET", "/boards/b%20c/players/p/")
    assert_error(resp, data, 400, "invalid_input")


def test_method_not_allowed(api: Api) -> None:
    resp, data = api.call("DELETE", "/boards/demo/players/stan/score-add/")
    assert_error(resp, data, 405, "method_not_allowed")
    assert resp.headers.getRawHeaders(b"allow") == [b"POST"]
    resp, data = api.call("PUT", "/boards/demo/")
    assert_error(resp, data, 405, "method_not_allowed")
    assert b"GET" in resp.headers.getRawHeaders(b"allow")[0]


def test_unknown_path(api: Api) -> None:
    resp, data = api.call("GET", "/nothing/here")
    assert_error(resp, data, 404, "not_found")


def test_list_boards(api: Api) -> None:
    for i in range(3):
        api.call("POST", "/boards/", json_body={"name": f"B{i}", "id": f"b{i}"})
    resp, data = api.call("GET", "/boards/?limit=2")
    assert resp.code == 200
    assert data["boards"] == [
        {"id": "b0", "name": "B0", "players": 0},
        {"id": "b1", "name": "B1", "players": 0},
    ]
    assert data["next"] == "/boards/?offset=2&limit=2"
    _, data = api.call("GET", data["next"])
    assert [b["id"] for b in data["boards"]] == ["b2", "demo"]
    assert data["next"] is None
    resp, data = api.call("GET", "/boards/?offset=-1")
    assert_error(resp, data, 400, "invalid_input")


def test_internal_errors_do_not_leak(api: Api) -> None:
    store = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(store.start())

    def boom(*a: Any) -> Any:
        raise RuntimeError("secret detail")

    store.board_view = boom  # type: ignore[method-assign]
    stub = Api(StubTreq(build_app(AppContext(store=store, clock=Clock())).resource()))
    resp, data = stub.call("GET", "/boards/x/")
    assert_error(resp, data, 500, "internal")
    assert "secret" not in json.dumps(data)


def test_store_unavailable_is_503(api: Api) -> None:
    store = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    stub = Api(StubTreq(build_app(AppContext(store=store, clock=Clock())).resource()))
    resp, data = stub.call("GET", "/boards/demo/")
    assert_error(resp, data, 503, "unavailable")
