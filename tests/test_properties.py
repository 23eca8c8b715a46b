"""Property tests: random sequences of creates, score-adds and score submissions, on boards of
every order and operator, agree with a plain Python model (scores, ranks, top N, tie order,
pages, around-me), through the API in memory and on every store kind."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock

from leaderboard.errors import AlreadyExists, NotFound
from leaderboard.resources import AppContext, build_app
from leaderboard.store.sqlite import SqliteStore
from tests.test_api import Api, done

BOARDS = ["b1", "b2", "B-3"]
#: Ids chosen so that byte order is not the obvious order: '-' < '0' < 'A' < '_' < 'a'.
PLAYERS = ["a", "A", "_z", "-x", "0", "a-", "Z9", "ab", "aa"]


ORDERS = ["desc", "asc"]
OPERATORS = ["incr", "set", "best"]


@dataclass
class Model:
    """The whole contract in a few lines: a board is a dict of player id to score, with an
    order (desc: higher is better; asc: lower is better) and an operator for submissions."""

    boards: dict[str, dict[str, int]] = field(default_factory=dict)
    options: dict[str, tuple[str, str]] = field(default_factory=dict)

    def better(self, board: str, a: int, b: int) -> bool:
        return a > b if self.options.get(board, ("desc", "incr"))[0] == "desc" else a < b

    def ranked(self, board: str) -> list[tuple[str, int, int]]:
        scores = self.boards[board]
        sign = -1 if self.options.get(board, ("desc", "incr"))[0] == "desc" else 1
        ordered = sorted(scores, key=lambda pid: (sign * scores[pid], pid.encode()))
        return [(pid, scores[pid], self.rank(board, pid)) for pid in ordered]

    def rank(self, board: str, player: str) -> int:
        scores = self.boards[board]
        return 1 + sum(1 for s in scores.values() if self.better(board, s, scores[player]))

    def submit(self, board: str, player: str, score: int) -> int:
        order, operator = self.options.get(board, ("desc", "incr"))
        scores = self.boards[board]
        if player not in scores:
            scores[player] = score
        elif operator == "incr":
            scores[player] += score
        elif operator == "set":
            scores[player] = score
        else:
            keep = max if order == "desc" else min
            scores[player] = keep(scores[player], score)
        return scores[player]


# -- through the API ----------------------------------------------------------------------------

op = st.one_of(
    st.tuples(
        st.just("board"),
        st.sampled_from(BOARDS),
        st.sampled_from(ORDERS),
        st.sampled_from(OPERATORS),
    ),
    st.tuples(
        st.just("submit"),
        st.sampled_from(BOARDS),
        st.sampled_from(PLAYERS),
        st.integers(-50, 50),
    ),
    st.tuples(st.just("player"), st.sampled_from(BOARDS), st.sampled_from(PLAYERS)),
    st.tuples(
        st.just("add"),
        st.sampled_from(BOARDS),
        st.sampled_from(PLAYERS),
        st.one_of(st.integers(-3, 3), st.integers(-(10**9), 10**9)),
    ),
    st.tuples(st.just("top"), st.sampled_from(BOARDS), st.integers(1, 12)),
)


def check_board(api: Api, model: Model, board: str, limit: int) -> None:
    resp, data = api.call("GET", f"/boards/{board}/?limit={limit}")
    if board not in model.boards:
        assert resp.code == 404
        return
    assert resp.code == 200
    got = [(p["id"], p["score"], p["rank"]) for p in data["players"]]
    assert got == model.ranked(board)[:limit]


@settings(
    max_examples=75,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=40))
def test_api_agrees_with_model(ops: list[tuple[Any, ...]]) -> None:
    store = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(store.start())
    try:
        api = Api(StubTreq(build_app(AppContext(store=store, clock=Clock())).resource()))
        model = Model()
        for step in ops:
            kind, board = step[0], step[1]
            if kind == "board":
                order, operator = step[2], step[3]
                resp, data = api.call(
                    "POST",
                    "/boards/",
                    json_body={"id": board, "name": board, "order": order, "operator": operator},
                )
                if board in model.boards:
                    assert resp.code == 409 and data["error"]["code"] == "already_exists"
                else:
                    assert resp.code == 201
                    assert (data["id"], data["name"], data["players"]) == (board, board, [])
                    assert (data["order"], data["operator"]) == (order, operator)
                    assert resp.headers.getRawHeaders(b"location") == [f"/boards/{board}/".encode()]
                    model.boards[board] = {}
                    model.options[board] = (order, operator)
            elif kind == "submit":
                player, score = step[2], step[3]
                resp, data = api.call(
                    "POST",
                    f"/boards/{board}/players/{player}/score/",
                    json_body={"score": score, "name": "P"},
                )
                if board not in model.boards:
                    assert resp.code == 404
                else:
                    assert resp.code == 200, data
                    assert data["score"] == model.submit(board, player, score)
                    assert data["rank"] == model.rank(board, player)
            elif kind == "player":
                player = step[2]
                resp, data = api.call(
                    "POST", f"/boards/{board}/players/", json_body={"id": player, "name": "P"}
                )
                if board not in model.boards:
                    assert resp.code == 404
                elif player in model.boards[board]:
                    assert resp.code == 409
                else:
                    model.boards[board][player] = 0
                    assert resp.code == 201
                    assert (data["score"], data["rank"]) == (0, model.rank(board, player))
            elif kind == "add":
                player, amount = step[2], step[3]
                resp, data = api.call(
                    "POST",
                    f"/boards/{board}/players/{player}/score-add/",
                    json_body={"amount": amount},
                )
                if board not in model.boards or player not in model.boards[board]:
                    assert resp.code == 404
                else:
                    model.boards[board][player] += amount
                    assert resp.code == 200
                    assert data["score"] == model.boards[board][player]
                    assert data["rank"] == model.rank(board, player)
            else:
                check_board(api, model, board, step[2])
        for board in BOARDS:
            check_board(api, model, board, 100)
            if board in model.boards:
                pages: list[tuple[str, int, int]] = []
                url: str | None = f"/boards/{board}/players/?limit=4"
                while url:
                    _, page = api.call("GET", url)
                    pages += [(p["id"], p["score"], p["rank"]) for p in page["players"]]
                    url = page["next"]
                assert pages == model.ranked(board)
                ranked = model.ranked(board)
                for i, (player, _, _) in enumerate(ranked):
                    _, near = api.call("GET", f"/boards/{board}/players/{player}/around/?n=2")
                    got = [(p["id"], p["score"], p["rank"]) for p in near["players"]]
                    assert got == ranked[max(0, i - 2) : i + 3]
            for player in model.boards.get(board, {}):
                _, data = api.call("GET", f"/boards/{board}/players/{player}/")
                assert (data["score"], data["rank"]) == (
                    model.boards[board][player],
                    model.rank(board, player),
                )
        _, listing = api.call("GET", "/boards/?limit=100")
        assert [(b["id"], b["players"]) for b in listing["boards"]] == sorted(
            ((b, len(p)) for b, p in model.boards.items()), key=lambda x: x[0].encode()
        )
    finally:
        done(store.stop())


# -- on every store kind, directly ----------------------------------------------------------


async def run_sequence(store: Any, seed: int, board: str) -> None:
    rng = random.Random(seed)
    model = Model()
    order, operator = rng.choice(ORDERS), rng.choice(OPERATORS)
    await store.create_board(board, board, order, operator)
    model.boards[board] = {}
    model.options[board] = (order, operator)
    players = rng.sample(PLAYERS, rng.randint(2, len(PLAYERS)))
    for _ in range(rng.randint(10, 40)):
        roll = rng.random()
        player = rng.choice(players)
        if roll < 0.3:
            try:
                created = await store.create_player(board, player, "P")
            except AlreadyExists:
                assert player in model.boards[board]
            else:
                assert player not in model.boards[board] and created.score == 0
                model.boards[board][player] = 0
        elif roll < 0.55:
            score = rng.randint(-20, 20)
            standing = await store.submit_score(board, player, score, "P")
            assert standing.player.score == model.submit(board, player, score)
            assert standing.rank == model.rank(board, player)
        elif roll < 0.85:
            amount = rng.choice([rng.randint(-2, 2), rng.randint(-(10**6), 10**6)])
            try:
                standing = await store.add_score(board, player, amount)
            except NotFound:
                assert player not in model.boards[board]
            else:
                model.boards[board][player] += amount
                assert standing.player.score == model.boards[board][player]
                assert standing.rank == model.rank(board, player)
        else:
            limit = rng.randint(1, 10)
            view = await store.board_view(board, limit)
            got = [(s.player.id, s.player.score, s.rank) for s in view.standings]
            assert got == model.ranked(board)[:limit], (seed, got)
    view = await store.board_view(board, 100)
    got = [(s.player.id, s.player.score, s.rank) for s in view.standings]
    assert got == model.ranked(board), (seed, got)
    ranked = model.ranked(board)
    page = await store.list_players(board, 2, 3)
    assert [(s.player.id, s.player.score, s.rank) for s in page] == ranked[2:5], seed
    for i, (player, _, _) in enumerate(ranked):
        near = await store.around(board, player, 1)
        got = [(s.player.id, s.player.score, s.rank) for s in near]
        assert got == ranked[max(0, i - 1) : i + 2], (seed, player, got)
    for player, score in model.boards[board].items():
        standing = await store.get_player(board, player)
        assert (standing.player.score, standing.rank) == (score, model.rank(board, player))


@pytest_twisted.ensureDeferred
async def test_store_agrees_with_model(store: Any) -> None:
    for seed in range(20):
        await run_sequence(store, seed, f"seq{seed}")
