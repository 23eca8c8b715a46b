# -*- test-case-name: tests.test_config -*-
"""The ``twistd leaderboard`` command line: options and the service they make."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from leaderboard.config import Config, ConfigError, load_config


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the realtime leaderboard API. Every option can also be set from the "
        "environment (PORT, DATABASE_URL, GRIP_URL, LEADERBOARD_*); options win. "
        "API keys (LEADERBOARD_API_KEYS) come from the environment only."
    )
    optParameters = [
        ["port", "p", None, "Port number or Twisted endpoint string [env PORT, default 8000]"],
        [
            "database-url",
            "d",
            None,
            "sqlite:///path or rethinkdb://[user[:password]@]host[:port]/db "
            "[env DATABASE_URL, default sqlite:///leaderboard.sqlite3]",
        ],
        ["grip-url", "g", None, "GRIP control endpoint(s), comma-separated [env GRIP_URL]"],
        [
            "keepalive",
            None,
            None,
            "Seconds between SSE keep-alive comments "
            "[env LEADERBOARD_KEEPALIVE_SECONDS, default 15]",
        ],
        ["top-n", None, None, "Players in a board event [env LEADERBOARD_TOP_N, default 5]"],
        [
            "max-streams",
            None,
            None,
            "Native SSE streams per process [env LEADERBOARD_MAX_STREAMS, default 20000]",
        ],
        [
            "stall-seconds",
            None,
            None,
            "Drop a native SSE reader whose connection has not drained for this long "
            "[env LEADERBOARD_STALL_SECONDS, default 30]",
        ],
        [
            "access-log",
            None,
            None,
            "on, off, or a file path [env LEADERBOARD_ACCESS_LOG, default off]",
        ],
        [
            "cors-origins",
            None,
            None,
            "Origins that may call the API from a browser, comma-separated, or * "
            "[env LEADERBOARD_CORS_ORIGINS, default *]",
        ],
    ]
    optFlags = [
        ["publish", None, "Publish board events to GRIP_URL (default when GRIP_URL is set)"],
        ["no-publish", None, "Do not publish: another process is the publisher"],
        ["no-seed", None, "Do not create the demo board on an empty database"],
    ]

    def postOptions(self) -> None:
        if self["publish"] and self["no-publish"]:
            raise usage.UsageError("--publish and --no-publish exclude each other")
        overrides: dict[str, object] = {
            k: self[k]
            for k in (
                "port",
                "database-url",
                "grip-url",
                "keepalive",
                "top-n",
                "max-streams",
                "cors-origins",
                "access-log",
                "stall-seconds",
            )
            if self[k] is not None
        }
        if self["publish"]:
            overrides["publish"] = "true"
        if self["no-publish"]:
            overrides["publish"] = "false"
        if self["no-seed"]:
            overrides["seed-demo"] = "false"
        try:
            self.config = load_config(os.environ, overrides)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Any) -> IService:
    from leaderboard.app import make_service

    config: Config = options.config
    return make_service(config)
