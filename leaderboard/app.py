# -*- test-case-name: tests.test_integration -*-
"""Wiring: a L{Config} becomes the running service tree (store, feed, streams, site)."""

from __future__ import annotations

import signal
from typing import Any

from twisted.logger import Logger

from leaderboard.config import Config
from leaderboard.feed import BoardFeed, EventSink, SseHub
from leaderboard.feed.grip import GripPublisher, any_verify_key, parse_grip_urls
from leaderboard.feed.sinks import GripSink
from leaderboard.resources import AppContext, LeaderboardSite, build_app
from leaderboard.resources.streams import BoardStreams
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
    hub = SseHub(reactor, config.keepalive_seconds, config.max_streams)
    sinks: list[EventSink] = [hub]
    proxies = parse_grip_urls(config.grip_url) if config.grip_url else []
    publisher: GripPublisher | None = None
    if proxies and not any_verify_key(proxies):
        log.warn(
            "GRIP_URL has no verify-key: any request carrying a Grip-Sig header is taken "
            "as coming through the proxy. Set verify-key (or, with Pushpin, its sig_key) "
            "in GRIP_URL in production."
        )
    if config.publish and proxies:
        publisher = GripPublisher(proxies, reactor)
        sinks.append(GripSink(publisher))
    feed = BoardFeed(store, sinks, reactor, top_n=config.top_n)
    streams = BoardStreams(store, hub, config.top_n, config.keepalive_seconds, proxies)
    ctx = AppContext(store=store, clock=reactor, top_n=config.top_n, streams=streams)
    site = LeaderboardSite(build_app(ctx).resource(), access_log=config.access_log)
    return LeaderboardService(
        StoreService(store, reactor, seed=config.seed_demo),
        WebService(reactor, config.port, site),
        feed=feed,
        hub=hub,
        publisher=publisher,
    )
