# -*- test-case-name: tests.test_api -*-
"""Player routes: create, read, rename and delete players; scores; rankings."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import inlineCallbacks
from twisted.web.iweb import IRequest

from leaderboard.errors import InvalidInput
from leaderboard.model import (
    Standing,
    check_amount,
    check_id,
    check_name,
    check_score_value,
    new_id,
    player_data,
    standing_data,
)
from leaderboard.resources._app import AppContext
from leaderboard.resources._http import json_response, read_body
from leaderboard.resources.boards import paged, query_arg

#: Most neighbours ``around/?n=`` returns on each side.
MAX_AROUND = 50


def install(app: Klein, ctx: AppContext) -> None:
    @app.route("/boards/<board>/players/", methods=["POST"], strict_slashes=False)
    @inlineCallbacks
    def create_player(request: IRequest, board: str) -> Any:
        ctx.authorize_write(request)
        board_id = check_id(board, "board id")
        body = read_body(request, {"id", "name"})
        if "name" not in body:
            raise InvalidInput("name is required")
        name = check_name(body["name"])
        player_id = check_id(body["id"], "id") if "id" in body else new_id()
        player = yield ctx.store.create_player(board_id, player_id, name)
        standing = yield ctx.store.get_player(board_id, player.id)
        request.setHeader(b"Location", f"/boards/{board_id}/players/{player.id}/".encode("ascii"))
        return json_response(request, player_data(standing), 201)

    @app.route("/boards/<board>/players/<player>/", methods=["GET"], strict_slashes=False)
    @inlineCallbacks
    def get_player(request: IRequest, board: str, player: str) -> Any:
        board_id = check_id(board, "board id")
        player_id = check_id(player, "player id")
        standing: Standing = yield ctx.store.get_player(board_id, player_id)
        return json_response(request, player_data(standing))

    @app.route(
        "/boards/<board>/players/<player>/score-add/", methods=["POST"], strict_slashes=False
    )
    @inlineCallbacks
    def score_add(request: IRequest, board: str, player: str) -> Any:
        ctx.authorize_write(request)
        board_id = check_id(board, "board id")
        player_id = check_id(player, "player id")
        body = read_body(request, {"amount"})
        amount = check_amount(body.integer("amount", 1))
        standing: Standing = yield ctx.store.add_score(board_id, player_id, amount)
        return json_response(request, player_data(standing))

    @app.route("/boards/<board>/players/<player>/score/", methods=["POST"], strict_slashes=False)
    @inlineCallbacks
    def submit_score(request: IRequest, board: str, player: str) -> Any:
        ctx.authorize_write(request)
        board_id = check_id(board, "board id")
        player_id = check_id(player, "player id")
        body = read_body(request, {"score", "name"})
        if "score" not in body:
            raise InvalidInput("score is required")
        score = check_score_value(body.integer("score", 0))
        name = check_name(body["name"]) if "name" in body else None
        standing: Standing = yield ctx.store.submit_score(board_id, player_id, score, name)
        return json_response(request, player_data(standing))

    @app.route("/boards/<board>/players/", methods=["GET"], strict_slashes=False)
    @inlineCallbacks
    def list_players(request: IRequest, board: str) -> Any:
        board_id = check_id(board, "board id")
        rows, page = yield paged(
            request,
            f"/boards/{board_id}/players/",
            lambda offset, limit: ctx.store.list_players(board_id, offset, limit),
        )
        players = [standing_data(s) for s in rows]
        return json_response(request, {"board": board_id, "players": players, **page})

    @app.route("/boards/<board>/players/<player>/around/", methods=["GET"], strict_slashes=False)
    @inlineCallbacks
    def around(request: IRequest, board: str, player: str) -> Any:
        board_id = check_id(board, "board id")
        player_id = check_id(player, "player id")
        text = query_arg(request, "n")
        n = 2
        if text is not None:
            if not text.isascii() or not text.isdigit() or int(text) > MAX_AROUND:
                raise InvalidInput(f"n must be an integer from 0 to {MAX_AROUND}")
            n = int(text)
        rows = yield ctx.store.around(board_id, player_id, n)
        return json_response(
            request,
            {"board": board_id, "player": player_id, "players": [standing_data(s) for s in rows]},
        )

    @app.route("/boards/<board>/players/<player>/", methods=["PATCH"], strict_slashes=False)
    @inlineCallbacks
    def rename(request: IRequest, board: str, player: str) -> Any:
        ctx.authorize_write(request)
        board_id = check_id(board, "board id")
        player_id = check_id(player, "player id")
        body = read_body(request, {"name"})
        if "name" not in body:
            raise InvalidInput("name is required")
        standing = yield ctx.store.rename_player(board_id, player_id, check_name(body["name"]))
        return json_response(request, player_data(standing))

    @app.route("/boards/<board>/players/<player>/", methods=["DELETE"], strict_slashes=False)
    @inlineCallbacks
    def delete_player(request: IRequest, board: str, player: str) -> Any:
        ctx.authorize_write(request)
        yield ctx.store.delete_player(check_id(board, "board id"), check_id(player, "player id"))
        request.setResponseCode(204)
        return b""
