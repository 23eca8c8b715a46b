# -*- test-case-name: tests.test_api -*-
"""Player routes: create a player, read one, and add to a score."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import inlineCallbacks
from twisted.web.iweb import IRequest

from leaderboard.errors import InvalidInput
from leaderboard.model import Standing, check_amount, check_id, check_name, new_id, player_data
from leaderboard.resources._app import AppContext
from leaderboard.resources._http import json_response, read_body


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
