# -*- test-case-name: tests.test_api -*-
"""Routes of the live page: the board list at ``/``, a board's page, and static assets."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.iweb import IRequest

from leaderboard.errors import NotFound
from leaderboard.resources._app import AppContext

_CSP = (
    b"default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _html(request: IRequest, body: bytes) -> bytes:
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Content-Security-Policy", _CSP)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    request.setHeader(b"Cache-Control", b"no-cache")
    return body


@inlineCallbacks
def serve_board_page(ctx: AppContext, request: IRequest, board_id: str) -> Any:
    """The live page of a board (404 JSON when the board does not exist)."""
    from leaderboard.resources import page

    board = yield ctx.store.get_board(board_id)
    return _html(request, page.board_page(board.id, board.name, ctx.writes_need_key))


def install(app: Klein, ctx: AppContext) -> None:
    from leaderboard.resources import page

    @app.route("/", methods=["GET"])
    def index(request: IRequest) -> bytes:
        return _html(request, page.index_page(ctx.writes_need_key))

    @app.route("/static/<name>", methods=["GET"])
    def static(request: IRequest, name: str) -> bytes | Deferred[Any]:
        found = page.static_file(name)
        if found is None:
            raise NotFound("no such static file")
        content, ctype = found
        request.setHeader(b"Content-Type", ctype.encode("ascii"))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return content
