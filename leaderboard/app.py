# -*- test-case-name: tests.test_integration -*-
"""Wiring: a L{Config} becomes the running service tree (store, feed, streams, site)."""

from __future__ import annotations

import signal
from functools import partial
from typing import Any

from twisted.logger import Logger

from leaderboard.config import Config
from leaderboard.feed import BoardFeed, EventSink, SseHub
from leaderboard.feed.grip import GripPublisher, any_verify_key, parse_grip_urls
from leaderboard.feed.sinks import GripSink
from leaderboard.metrics import Metrics, MetricsResource
from leaderboard.metrics import install as install_metrics
from leaderboard.resources import AppContext, LeaderboardSite, build_app, health, openapi
from leaderboard.resources.auth import make_authorizer
from leaderboard.resources.cors import CorsResource, routed_methods
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
    hub = SseHub(
        reactor, config.keepalive_seconds, config.max_streams, stall_timeout=config.stall_seconds
    )
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
    metrics = Metrics(reactor)
    feed = BoardFeed(
        store, sinks, reactor, top_n=config.top_n, lag_observer=metrics.observe_feed_lag
    )
    metrics.watch(hub=hub, feed=feed, publisher=publisher)
    streams = BoardStreams(
        store, hub, config.top_n, config.keepalive_seconds, proxies, latest=feed.latest
    )
    store_service = StoreService(store, reactor, seed=config.seed_demo)
    if config.api_keys:
        log.info("writes need an API key ({count} configured)", count=len(config.api_keys))
    ctx = AppContext(
        store=store,
        clock=reactor,
        top_n=config.top_n,
        streams=streams,
        writes_need_key=bool(config.api_keys),
        authorize_write=make_authorizer(config.api_keys),
        extra_routes=[
            partial(
                health.install,
                readiness=health.service_readiness(store_service, feed, clock=reactor),
            ),
            partial(install_metrics, metrics=metrics),
            openapi.install,
        ],
    )
    app = build_app(ctx)
    cors = CorsResource(app.resource(), config.cors_origins, routed_methods(app.url_map))
    site = LeaderboardSite(
        MetricsResource(cors, metrics, app.url_map), access_log=config.access_log
    )
    return LeaderboardService(
        store_service,
        WebService(reactor, config.port, site),
        feed=feed,
        hub=hub,
        publisher=publisher,
    )
