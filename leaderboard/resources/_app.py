# -*- test-case-name: tests.test_api -*-
"""The Klein application: what every route needs, and the one place errors become JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import RequestRedirect

from leaderboard.errors import LeaderboardError
from leaderboard.model import DEFAULT_LIMIT
from leaderboard.resources._http import error_body, error_response, json_response
from leaderboard.store import Store

log = Logger(namespace="leaderboard.resources")


class BoardStreams(Protocol):
    """Answers a board's event-stream request: GRIP hold or native SSE."""

    def respond(self, request: IRequest, board_id: str) -> Any: ...


@dataclass
class AppContext:
    """Everything the routes use, passed in (never read from globals)."""

    store: Store
    clock: IReactorTime
    top_n: int = DEFAULT_LIMIT
    streams: BoardStreams | None = None
    writes_need_key: bool = False
    #: Called first by every write route; raises (401/403) when the request may not write.
    authorize_write: Callable[[IRequest], None] = lambda request: None
    extra_routes: list[Callable[[Klein, AppContext], None]] = field(default_factory=list)


def build_app(ctx: AppContext) -> Klein:
    """A Klein app with every route installed."""
    from leaderboard.resources import boards, live, players

    app = Klein()
    boards.install(app, ctx)
    players.install(app, ctx)
    live.install(app, ctx)
    for install in ctx.extra_routes:
        install(app, ctx)

    @app.handle_errors
    def on_error(request: IRequest, failure: Failure) -> bytes | None:
        return render_failure(request, failure)

    return app


def render_failure(request: IRequest, failure: Failure) -> bytes | None:
    """Map any failure to the JSON error shape; log the unexpected ones, leak nothing."""
    error = failure.value
    if isinstance(error, LeaderboardError):
        return error_response(request, error)
    if isinstance(error, RequestRedirect):
        request.setHeader(b"Location", error.new_url.encode("utf-8"))
        return json_response(request, error_body("redirect", f"see {error.new_url}"), error.code)
    if isinstance(error, MethodNotAllowed):
        allowed = sorted(error.valid_methods or [])
        request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
        return json_response(
            request,
            error_body("method_not_allowed", f"allowed methods: {', '.join(allowed)}"),
            405,
        )
    if isinstance(error, RouteNotFound):
        return json_response(request, error_body("not_found", "no such resource"), 404)
    if isinstance(error, HTTPException):
        code = error.code or 500
        return json_response(
            request, error_body(error.name.lower().replace(" ", "_"), error.name), code
        )
    if isinstance(error, CancelledError):
        return None  # the client went away; nothing to answer
    log.failure(
        "unexpected error answering {method} {uri}", failure, method=request.method, uri=request.uri
    )
    return json_response(request, error_body("internal", "internal server error"), 500)
