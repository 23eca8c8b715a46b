"""HTTP resources: the Klein routes of the API, the event streams and the live page."""

from leaderboard.resources._app import AppContext, build_app
from leaderboard.resources._site import LeaderboardSite

__all__ = ["AppContext", "LeaderboardSite", "build_app"]
