"""Realtime: the changefeed loop, the native SSE hub, and the GRIP publisher."""

from leaderboard.feed.hub import SseHub
from leaderboard.feed.loop import BoardFeed, EventSink

__all__ = ["BoardFeed", "EventSink", "SseHub"]
