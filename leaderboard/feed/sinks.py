# -*- test-case-name: tests.test_feed -*-
"""The GRIP sink: board events from the feed loop, published to the proxies' channels."""

from __future__ import annotations

from leaderboard.feed.grip import GripPublisher, channel_for_board
from leaderboard.model import Event


class GripSink:
    """Publishes every board event to its channel; subscribers live in the proxy, so every
    board is wanted."""

    def __init__(self, publisher: GripPublisher) -> None:
        self.publisher = publisher
        self._last: dict[str, str] = {}

    def wants(self, board: str) -> bool:
        return True

    def publish(self, board: str, event: Event) -> None:
        prev = self._last.pop(board, None)
        self._last[board] = event.id
        if len(self._last) > 100_000:
            del self._last[next(iter(self._last))]
        self.publisher.publish(channel_for_board(board), event.encoded, event.id, prev)
