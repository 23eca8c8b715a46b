"""A realtime leaderboard API server on Twisted and Klein."""

__version__ = "0.1.0"
