"""Beyond the seed, over the API in memory: board options, score operators, pagination,
around-me, rename, deletes (and a deleted board's stream ending)."""

from __future__ import annotations

from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from leaderboard.feed.hub import SseHub
from leaderboard.feed.loop import BoardFeed
from leaderboard.resources import AppContext, build_app
from tests.test_api import Api, assert_error, done
from tests.test_api import store as store  # the in-memory SQLite store with the demo board
from tests.test_streams import request as stream_request


@pytest.fixture
def app(store: Any) -> Api:
    return Api(StubTreq(build_app(AppContext(store=store, clock=Clock())).resource()))


def make_board(app: Api, board: str, **options: Any) -> dict[str, Any]:
    resp, data = app.call("POST", "/boards/", json_body={"id": board, "name": board.title(), **options})
    assert resp.code == 201, data
    return data  # type: ignore[no-any-return]


def test_board_options_in_every_board_answer(app: Api) -> None:
    data = make_board(app, "laps", order="asc", operator="best", metadata={"unit": "ms"})
    assert (data["order"], data["operator"], data["metadata"]) == ("asc", "best", {"unit": "ms"})
    _, board = app.call("GET", "/boards/laps/")
    assert (board["order"], board["operator"], board["metadata"]) == ("asc", "best", {"unit": "ms"})


@pytest.mark.parametrize("options", [
    {"order": "up"}, {"operator": "max"}, {"order": 1}, {"metadata": []},
    {"metadata": {"x": "y" * 5000}}, {"metadata": "text"},
])
def test_bad_board_options(app: Api, options: dict[str, Any]) -> None:
    resp, data = app.call("POST", "/boards/", json_body={"name": "X", **options})
    assert_error(resp, data, 400, "invalid_input")


def test_score_submission_with_operators_and_creation(app: Api) -> None:
    make_board(app, "laps", order="asc", operator="best")
    resp, data = app.call("POST", "/boards/laps/players/ann/score/",
                          json_body={"score": 6100, "name": "Ann"})
    assert resp.code == 200 and (data["score"], data["rank"], data["name"]) == (6100, 1, "Ann")
    _, data = app.call("POST", "/boards/laps/players/ann/score/", json_body={"score": 6400})
    assert data["score"] == 6100  # best on an ascending board keeps the lower time
    _, data = app.call("POST", "/boards/laps/players/ann/score/", json_body={"score": 5900})
    assert data["score"] == 5900
    app.call("POST", "/boards/laps/players/bob/score/", json_body={"score": 5000, "name": "Bob"})
    _, board = app.call("GET", "/boards/laps/")
    assert [(p["id"], p["rank"]) for p in board["players"]] == [("bob", 1), ("ann", 2)]
    resp, data = app.call("POST", "/boards/laps/players/cy/score/", json_body={"score": 1})
    assert_error(resp, data, 404, "not_found")
    for bad in [{"score": 1.5}, {"score": "1"}, {}, {"score": 2**53}, {"score": 1, "x": 2}]:
        resp, data = app.call("POST", "/boards/laps/players/ann/score/", json_body=bad)
        assert_error(resp, data, 400, "invalid_input")


def test_players_pagination(app: Api) -> None:
    make_board(app, "big")
    for i in range(7):
        app.call("POST", "/boards/big/players/", json_body={"id": f"p{i}", "name": f"P{i}"})
        app.call("POST", f"/boards/big/players/p{i}/score-add/", json_body={"amount": i * 10})
    resp, page = app.call("GET", "/boards/big/players/?limit=3")
    assert resp.code == 200
    assert [(p["id"], p["rank"]) for p in page["players"]] == [("p6", 1), ("p5", 2), ("p4", 3)]
    assert page["next"] == "/boards/big/players/?offset=3&limit=3"
    _, page = app.call("GET", page["next"])
    _, last = app.call("GET", page["next"])
    assert [p["id"] for p in last["players"]] == ["p0"] and last["next"] is None
    resp, data = app.call("GET", "/boards/nope/players/")
    assert_error(resp, data, 404, "not_found")


def test_around(app: Api) -> None:
    _, data = app.call("GET", "/boards/demo/players/kenny/around/?n=1")
    assert [(p["id"], p["rank"]) for p in data["players"]] == [("kyle", 2), ("kenny", 3), ("eric", 4)]
    _, data = app.call("GET", "/boards/demo/players/stan/around/")
    assert [p["id"] for p in data["players"]] == ["stan", "kyle", "kenny"]
    for bad in ["-1", "51", "x"]:
        resp, data = app.call("GET", f"/boards/demo/players/stan/around/?n={bad}")
        assert_error(resp, data, 400, "invalid_input")


def test_rename_and_delete(app: Api) -> None:
    resp, data = app.call("PATCH", "/boards/demo/players/eric/", json_body={"name": "Cartman"})
    assert resp.code == 200 and (data["name"], data["score"]) == ("Cartman", 6)
    resp, data = app.call("PATCH", "/boards/demo/players/eric/", json_body={"name": ""})
    assert_error(resp, data, 400, "invalid_input")
    resp, _ = app.call("DELETE", "/boards/demo/players/eric/")
    assert resp.code == 204
    resp, data = app.call("GET", "/boards/demo/players/eric/")
    assert_error(resp, data, 404, "not_found")
    resp, _ = app.call("DELETE", "/boards/demo/")
    assert resp.code == 204
    resp, data = app.call("GET", "/boards/demo/")
    assert_error(resp, data, 404, "not_found")
    resp, data = app.call("DELETE", "/boards/demo/")
    assert_error(resp, data, 404, "not_found")


def test_a_deleted_boards_streams_end_with_a_deleted_event(store: Any) -> None:
    clock = Clock()
    hub = SseHub(clock)
    feed = BoardFeed(store, [hub], clock)
    feed.startService()
    view = done(store.board_view("demo", 5))
    from leaderboard.model import board_event

    req = stream_request()
    listener = hub.add(req, "demo", board_event(view))
    done(store.delete_board("demo"))
    clock.advance(1)
    assert req.written[-1].startswith(b"event: deleted\n")
    assert b'"deleted":true' in req.written[-1]
    assert listener.ended.called and len(hub) == 0
    feed.stopService()
