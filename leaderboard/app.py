# -*- test-case-name: tests.test_integration -*-
"""Wiring: a L{Config} becomes the running service tree (store, feed, streams, site)."""

from __future__ import annotations

import signal
from typing import Any

from twisted.logger import Logger

from leaderboard.config import Config
from leaderboard.resources import AppContext, LeaderboardSite, build_app
from leaderboard.service import LeaderboardService, StoreService, WebService
from leaderboard.store import open_store

log = Logger(namespace="leaderboard")


def _graceful_signals(reactor: Any) -> None:
    """SIGTERM and SIGINT stop the reactor (services stop in order) and twistd exits 0,
    rather than re-raising the signal as Twisted does by default."""

    def stop(signum: int, frame: object) -> None:
        log.info("received {signal}, stopping gracefully", signal=signal.Signals(signum).name)
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def make_service(config: Config, reactor: Any = None) -> LeaderboardService:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    reactor.callWhenRunning(_graceful_signals, reactor)
    store = open_store(config.database_url, reactor)
    ctx = AppContext(store=store, clock=reactor, top_n=config.top_n)
    site = LeaderboardSite(build_app(ctx).resource())
    return LeaderboardService(
        StoreService(store, reactor, seed=config.seed_demo),
        WebService(reactor, config.port, site),
    )
