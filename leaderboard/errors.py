# -*- test-case-name: tests.test_api -*-
"""Typed errors: raised by the store and the resources, rendered once at the edge."""

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


class NotFound(LeaderboardError):
    status = 404
    code = "not_found"


class AlreadyExists(LeaderboardError):
    status = 409
    code = "already_exists"


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
