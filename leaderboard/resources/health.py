# -*- test-case-name: tests.test_health -*-
"""Liveness and readiness probes: ``GET /healthz`` and ``GET /readyz``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from leaderboard.errors import LeaderboardError, NotReady
from leaderboard.resources._app import AppContext
from leaderboard.resources._http import json_response

log = Logger(namespace="leaderboard.health")

#: Answers None when the server is ready, else the reason it is not (or a Deferred of that).
Readiness = Callable[[], "Deferred[str | None] | str | None"]


def service_readiness(
    store_service: Any, feed: Any = None, clock: IReactorTime | None = None, timeout: float = 2.0
) -> Readiness:
    """Readiness from the service tree: the store has started (L{StoreService.is_ready})
    and still answers a trivial query within ``timeout`` seconds (when a ``clock`` is
    given), and, when there is a feed, its change-stream loop is running
    (L{BoardFeed.running_loop})."""

    def readiness() -> str | Deferred[str | None] | None:
        if not getattr(store_service, "is_ready", False):
            return "the store is not reachable yet"
        if feed is not None and not getattr(feed, "running_loop", False):
            return "the feed loop is not running"
        if clock is None:
            return None
        d: Deferred[Any] = store_service.store.is_empty()
        d.addTimeout(timeout, clock)

        def answered(_: object) -> None:
            return None

        def failed(failure: Failure) -> str:
            error = failure.value
            if isinstance(error, LeaderboardError):
                return f"the store is not answering ({error.message})"
            if failure.check(TimeoutError, CancelledError):
                return f"the store did not answer within {timeout:g}s"
            return "the store is not answering"

        return d.addCallbacks(answered, failed)

    return readiness


def install(app: Klein, ctx: AppContext, readiness: Readiness) -> None:
    """Add the probes; use ``functools.partial(install, readiness=...)`` in extra_routes."""

    @app.route("/healthz", methods=["GET"])
    def healthz(request: IRequest) -> bytes:
        return json_response(request, {"status": "ok"})

    @app.route("/readyz", methods=["GET"])
    def readyz(request: IRequest) -> Deferred[bytes]:
        def answer(reason: str | None) -> bytes:
            if reason is not None:
                request.setHeader(b"Retry-After", b"5")
                raise NotReady(f"not ready: {reason}")
            return json_response(request, {"status": "ready"})

        def check_failed(failure: Failure) -> str:
            log.failure("the readiness check failed", failure)
            return "the readiness check failed"

        d: Deferred[str | None] = maybeDeferred(readiness)  # type: ignore[call-overload]
        d.addErrback(check_failed)
        return d.addCallback(answer)
