"""twistd plugin: ``twistd -n leaderboard`` runs the leaderboard API server."""

from twisted.application.service import ServiceMaker

leaderboard = ServiceMaker(
    "Realtime leaderboard API",
    "leaderboard.tap",
    "A realtime leaderboard API with SSE and GRIP (Pushpin) push",
    "leaderboard",
)
