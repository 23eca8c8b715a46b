# -*- test-case-name: tests.test_health -*-
"""Prometheus metrics: requests by route, latency, streams, events, GRIP failures, feed lag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from klein import Klein
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

from leaderboard.resources._app import AppContext

#: Methods counted under their own name; anything else is counted as ``OTHER``.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The route label of a path no route matches (bounded: never the raw path).
UNMATCHED = "unmatched"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Sources(Collector):
    """Reads the live objects' own counters at scrape time (nothing to keep in step)."""

    def __init__(self) -> None:
        self.hub: Any = None
        self.feed: Any = None
        self.publisher: Any = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        hub, feed, publisher = self.hub, self.feed, self.publisher
        if hub is not None:
            yield _gauge("leaderboard_sse_streams_open", "Native SSE streams open now", len(hub))
            yield _counter(
                "leaderboard_sse_events_sent",
                "Events written to native SSE streams (one per listener)",
                hub.events_sent,
            )
        if feed is not None:
            yield _counter(
                "leaderboard_feed_events", "Board events the feed handed to its sinks", feed.events
            )
            yield _counter(
                "leaderboard_feed_changes", "Store changes the feed received", feed.changes_seen
            )
            yield _counter("leaderboard_feed_reads", "Board reads made by the feed", feed.reads)
            yield _gauge(
                "leaderboard_feed_loop_running",
                "1 while the feed follows the store's change stream",
                1 if feed.running_loop else 0,
            )
        if publisher is not None:
            yield _counter(
                "leaderboard_grip_published", "GRIP publishes the proxies accepted",
                publisher.published,
            )
            yield _counter(
                "leaderboard_grip_publish_failures", "GRIP publish attempts that failed",
                publisher.failed,
            )
            yield _counter(
                "leaderboard_grip_dropped", "Board events given up on without being published",
                publisher.dropped,
            )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class Metrics:
    """One app's metrics, in a registry of its own (tests make many apps)."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leaderboard_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leaderboard_http_request_duration_seconds",
            "Time to answer an HTTP request (event streams excluded), by method and route",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feed_lag = Histogram(
            "leaderboard_feed_lag_seconds",
            "Time from a store change reaching the feed to its board event going out",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self._sources = _Sources()
        self.registry.register(self._sources)

    def watch(self, *, hub: Any = None, feed: Any = None, publisher: Any = None) -> None:
        """Report these objects' counters: an L{SseHub}, a L{BoardFeed}, a L{GripPublisher}."""
        if hub is not None:
            self._sources.hub = hub
        if feed is not None:
            self._sources.feed = feed
        if publisher is not None:
            self._sources.publisher = publisher

    def observe_feed_lag(self, seconds: float) -> None:
        """The feed's hook: one board event went out ``seconds`` after its first change."""
        self.feed_lag.observe(max(0.0, seconds))

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type (OpenMetrics when the scraper asks)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


_ROUTE_CACHE = 4096


def route_template(url_map: Map, method: str, path: str) -> str:
    """The route a path belongs to, OpenAPI style (``/boards/{board}/``), or L{UNMATCHED}."""
    adapter = url_map.bind("localhost", path_info=path, default_method=method)
    try:
        rule, _ = adapter.match(return_rule=True)
    except MethodNotAllowed as e:
        valid = sorted(e.valid_methods or [])
        if not valid:
            return UNMATCHED
        try:
            rule, _ = adapter.match(method=valid[0], return_rule=True)
        except Exception:
            return UNMATCHED
    except (NotFound, RequestRedirect):
        return UNMATCHED
    except Exception:
        return UNMATCHED
    return str(rule.rule).replace("<", "{").replace(">", "}")


class MetricsResource(Resource):
    """Wraps the whole site: counts every answered request (errors included) by method,
    route template and status, and times the ones that are not event streams."""

    isLeaf = True

    def __init__(self, wrapped: IResource, metrics: Metrics, url_map: Map) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._metrics = metrics
        self._url_map = url_map
        #: (method, path) -> route template; bounded, so random paths cannot grow it.
        self._routes: dict[tuple[str, str], str] = {}

    def _route(self, method: str, path: str) -> str:
        key = (method, path)
        route = self._routes.get(key)
        if route is None:
            route = route_template(self._url_map, method, path)
            if len(self._routes) >= _ROUTE_CACHE:
                del self._routes[next(iter(self._routes))]
            self._routes[key] = route
        return route

    def render(self, request: IRequest) -> Any:
        req: Any = request  # a twisted.web Request: code, notifyFinish
        method = request.method.decode("ascii", "replace").upper()
        if method not in _METHODS:
            method = "OTHER"
        segments: Sequence[bytes] = [*request.prepath, *request.postpath]  # type: ignore[attr-defined]
        try:
            path = "/" + b"/".join(segments).decode("utf-8")
            route = self._route(method, path)
        except UnicodeDecodeError:
            route = UNMATCHED
        started = self._metrics.clock.seconds()

        def finished(_: object) -> None:
            self._metrics.requests.labels(method, route, str(req.code)).inc()
            ctype = request.responseHeaders.getRawHeaders(b"content-type") or [b""]
            if not ctype[0].startswith(b"text/event-stream"):
                elapsed = self._metrics.clock.seconds() - started
                self._metrics.latency.labels(method, route).observe(max(0.0, elapsed))

        req.notifyFinish().addBoth(finished)
        return getChildForRequest(self._wrapped, request).render(request)


def install(app: Klein, ctx: AppContext, metrics: Metrics) -> None:
    """Add ``GET /metrics``; use ``functools.partial(install, metrics=...)`` in extra_routes."""

    @app.route("/metrics", methods=["GET"])
    def scrape(request: IRequest) -> bytes:
        accept = request.getHeader(b"accept")
        body, content_type = metrics.exposition(accept.decode("latin-1") if accept else None)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body
