# -*- test-case-name: tests.test_streams -*-
"""A board's event stream: GRIP hold instructions through a proxy, native SSE otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from leaderboard.errors import TooManyStreams
from leaderboard.feed.grip import (
    GripProxy,
    channel_for_board,
    grip_request_verified,
    hold_stream_headers,
)
from leaderboard.feed.hub import SseHub
from leaderboard.model import Event, board_event
from leaderboard.store import Store


class BoardStreams:
    """Answers ``GET /boards/{b}/`` with ``Accept: text/event-stream``.

    Both kinds of answer start with the board's current state as the first ``update``
    event, so a client (or a reconnecting one, ``Last-Event-ID`` or not) never needs a
    separate GET.
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        hub: SseHub,
        top_n: int,
        keepalive_seconds: float,
        proxies: list[GripProxy] | None = None,
        latest: Callable[[str], Event | None] | None = None,
    ) -> None:
        """``latest`` (the feed's L{BoardFeed.latest}) gives a board's current event when it
        is known without a read, so a crowd of connecting clients costs no store reads."""
        self.store = store
        self.latest = latest
        self.hub = hub
        self.top_n = top_n
        self.keepalive_seconds = keepalive_seconds
        self.proxies = proxies or []

    def via_grip(self, request: IRequest) -> bool:
        if not self.proxies:
            return False
        return grip_request_verified(request.getHeader(b"grip-sig"), self.proxies)

    @inlineCallbacks
    def respond(self, request: IRequest, board_id: str) -> Any:
        grip = self.via_grip(request)
        if not grip and self.hub.full():
            request.setHeader(b"Retry-After", b"5")
            raise TooManyStreams("this server holds as many streams as it may; retry soon")
        event = self.latest(board_id) if self.latest is not None else None
        if event is None and not grip:
            event = self.hub.latest(board_id)
        if event is None:
            view = yield self.store.board_view(board_id, self.top_n)
            event = board_event(view)
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        if grip:
            headers = hold_stream_headers(channel_for_board(board_id), int(self.keepalive_seconds))
            for name, value in headers.items():
                request.setHeader(name, value)
            return event.encoded
        request.setHeader(b"X-Accel-Buffering", b"no")
        channel = getattr(request, "channel", None)
        if channel is not None and hasattr(channel, "setTimeout"):
            channel.setTimeout(None)  # a stream is idle on the client side by design
        listener = self.hub.add(request, board_id, event)
        result = yield listener.ended
        return result
