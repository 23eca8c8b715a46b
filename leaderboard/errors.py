# -*- test-case-name: tests.test_api -*-
"""Typed errors, all of them: raised by the store and the resources, rendered once at the
edge (L{leaderboard.resources._app.render_failure})."""

from __future__ import annotations


class LeaderboardError(Exception):
    """A failure with a stable machine-readable code and an HTTP status."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(LeaderboardError):
    status = 400
    code = "invalid_input"


class ScoreOutOfRange(InvalidInput):
    code = "score_out_of_range"


class Unauthorized(LeaderboardError):
    """No usable credentials: the header is missing, not Bearer, or malformed."""

    status = 401
    code = "unauthorized"


class Forbidden(LeaderboardError):
    """Credentials were given, and they are not a key this server accepts."""

    status = 403
    code = "forbidden"


class NotFound(LeaderboardError):
    status = 404
    code = "not_found"


class AlreadyExists(LeaderboardError):
    status = 409
    code = "already_exists"


class NotAcceptable(LeaderboardError):
    """Nothing the resource offers is acceptable to the client's ``Accept``."""

    status = 406
    code = "not_acceptable"


class PayloadTooLarge(LeaderboardError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(LeaderboardError):
    status = 415
    code = "unsupported_media_type"


class StoreUnavailable(LeaderboardError):
    """The database cannot be reached right now; the client may retry."""

    status = 503
    code = "unavailable"


class TooManyStreams(LeaderboardError):
    """This process holds as many native streams as it may."""

    status = 503
    code = "too_many_streams"


class NotReady(LeaderboardError):
    """``/readyz``: the store or the feed loop is not ready."""

    status = 503
    code = "not_ready"
