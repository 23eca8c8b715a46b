# -*- test-case-name: tests.test_api -*-
"""Board routes: create, list, and the board itself as JSON, event stream or live page."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from klein import Klein
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.iweb import IRequest

from leaderboard.errors import InvalidInput, NotAcceptable
from leaderboard.model import (
    OPERATORS,
    ORDERS,
    BoardView,
    board_data,
    check_choice,
    check_id,
    check_limit,
    check_metadata,
    check_name,
    new_id,
)
from leaderboard.resources._app import AppContext
from leaderboard.resources._http import json_response, preferred_type, read_body

#: What GET /boards/{b}/ can answer, JSON first so that ``*/*`` alone means JSON.
T = TypeVar("T")

BOARD_TYPES = ["application/json", "text/event-stream", "text/html"]
LIST_LIMIT = 20


@inlineCallbacks
def paged(
    request: IRequest, path: str, fetch: Callable[[int, int], Deferred[list[T]]]
) -> Generator[Deferred[Any], Any, tuple[list[T], dict[str, Any]]]:
    """One page of a listing: ``?offset=`` and ``?limit=`` (default 20) read and checked,
    one row more than the page fetched to know whether there is a next page, and the
    ``offset``/``limit``/``next`` fields of the answer."""
    offset = offset_arg(request)
    text = query_arg(request, "limit")
    limit = LIST_LIMIT if text is None else check_limit(text)
    rows = yield fetch(offset, limit + 1)
    following = f"{path}?offset={offset + limit}&limit={limit}" if len(rows) > limit else None
    return rows[:limit], {"offset": offset, "limit": limit, "next": following}


def offset_arg(request: IRequest) -> int:
    text = query_arg(request, "offset") or "0"
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidInput("offset must be a non-negative integer below 10^9")
    return int(text)


def query_arg(request: IRequest, name: str) -> str | None:
    values = request.args.get(name.encode("ascii"))  # type: ignore[attr-defined]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(f"query argument {name!r} given twice")
    try:
        return values[0].decode("utf-8")  # type: ignore[no-any-return]
    except UnicodeDecodeError:
        raise InvalidInput(f"query argument {name!r} is not UTF-8") from None


def install(app: Klein, ctx: AppContext) -> None:
    @app.route("/boards/", methods=["POST"], strict_slashes=False)
    @inlineCallbacks
    def create_board(request: IRequest) -> Any:
        ctx.authorize_write(request)
        body = read_body(request, {"id", "name", "order", "operator", "metadata"})
        if "name" not in body:
            raise InvalidInput("name is required")
        name = check_name(body["name"])
        board_id = check_id(body["id"], "id") if "id" in body else new_id()
        order = check_choice(body.get("order", "desc"), "order", ORDERS)
        operator = check_choice(body.get("operator", "incr"), "operator", OPERATORS)
        metadata = check_metadata(body.get("metadata", {}))
        board = yield ctx.store.create_board(board_id, name, order, operator, metadata)
        request.setHeader(b"Location", f"/boards/{board.id}/".encode("ascii"))
        return json_response(request, board_data(BoardView(board, ())), 201)

    @app.route("/boards/<board>/", methods=["DELETE"], strict_slashes=False)
    @inlineCallbacks
    def delete_board(request: IRequest, board: str) -> Any:
        ctx.authorize_write(request)
        yield ctx.store.delete_board(check_id(board, "board id"))
        request.setResponseCode(204)
        return b""

    @app.route("/boards/", methods=["GET"], strict_slashes=False)
    @inlineCallbacks
    def list_boards(request: IRequest) -> Any:
        rows, page = yield paged(request, "/boards/", ctx.store.list_boards)
        boards = [{"id": b.id, "name": b.name, "players": b.players} for b in rows]
        return json_response(request, {"boards": boards, **page})

    @app.route("/boards/<board>/", methods=["GET"], strict_slashes=False)
    @inlineCallbacks
    def get_board(request: IRequest, board: str) -> Any:
        board_id = check_id(board, "board id")
        kind = preferred_type(request, BOARD_TYPES)
        if kind is None:
            raise NotAcceptable("this resource is available as " + ", ".join(BOARD_TYPES))
        request.responseHeaders.addRawHeader(b"Vary", b"Accept")
        if kind == "text/event-stream":
            if ctx.streams is None:
                raise NotAcceptable("event streams are not enabled on this server")
            result = yield ctx.streams.respond(request, board_id)
            return result
        if kind == "text/html":
            from leaderboard.resources.live import serve_board_page

            result = yield serve_board_page(ctx, request, board_id)
            return result
        limit_arg = query_arg(request, "limit")
        limit = ctx.top_n if limit_arg is None else check_limit(limit_arg)
        view = yield ctx.store.board_view(board_id, limit)
        return json_response(request, board_data(view))
