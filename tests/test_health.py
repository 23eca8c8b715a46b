"""Health probes (/healthz, /readyz) and Prometheus metrics (/metrics, the request counter)."""

from __future__ import annotations

import functools
import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from klein import Klein
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.web.iweb import IRequest

from leaderboard.errors import StoreUnavailable
from leaderboard.feed import BoardFeed, SseHub
from leaderboard.metrics import Metrics, MetricsResource, route_template
from leaderboard.metrics import install as install_metrics
from leaderboard.resources import AppContext, build_app, health
from leaderboard.resources.cors import CorsResource
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore
from tests.harness.server import ServerProcess
from tests.test_api import Api, assert_error, done


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(s.start())
    done(seed_demo(s))
    yield s
    done(s.stop())


def probe_api(store: SqliteStore, readiness: Callable[[], Any]) -> Api:
    ctx = AppContext(
        store=store,
        clock=Clock(),
        extra_routes=[functools.partial(health.install, readiness=readiness)],
    )
    return Api(StubTreq(build_app(ctx).resource()))


# -- probes ---------------------------------------------------------------------------------


def test_healthz(store: SqliteStore) -> None:
    resp, data = probe_api(store, lambda: "down").call("GET", "/healthz")
    assert resp.code == 200 and data == {"status": "ok"}
    assert resp.headers.getRawHeaders(b"cache-control") == [b"no-store"]


def test_readyz_ready_and_not(store: SqliteStore) -> None:
    state: dict[str, str | None] = {"reason": None}
    api = probe_api(store, lambda: state["reason"])
    resp, data = api.call("GET", "/readyz")
    assert resp.code == 200 and data == {"status": "ready"}
    state["reason"] = "the feed loop is not running"
    resp, data = api.call("GET", "/readyz")
    assert_error(resp, data, 503, "not_ready")
    assert "the feed loop is not running" in data["error"]["message"]
    assert resp.headers.getRawHeaders(b"retry-after") == [b"5"]


def test_readyz_deferred_and_failing_checks(store: SqliteStore) -> None:
    resp, data = probe_api(store, lambda: succeed(None)).call("GET", "/readyz")
    assert resp.code == 200
    resp, data = probe_api(store, lambda: succeed("warming up")).call("GET", "/readyz")
    assert_error(resp, data, 503, "not_ready")

    def broken() -> None:
        raise RuntimeError("secret detail")

    resp, data = probe_api(store, broken).call("GET", "/readyz")
    assert_error(resp, data, 503, "not_ready")
    assert "secret detail" not in data["error"]["message"]


class FakeStoreService:
    def __init__(self, store: Any, is_ready: bool) -> None:
        self.store = store
        self.is_ready = is_ready


class FakeFeed:
    running_loop = True
    events = 3
    changes_seen = 7
    reads = 4


def test_service_readiness(store: SqliteStore) -> None:
    clock = Clock()
    feed = FakeFeed()
    check = health.service_readiness(FakeStoreService(store, False), feed, clock=clock)
    assert check() == "the store is not reachable yet"
    service = FakeStoreService(store, True)
    check = health.service_readiness(service, feed, clock=clock)
    assert done(check()) is None  # type: ignore[arg-type]
    feed.running_loop = False
    assert check() == "the feed loop is not running"
    feed.running_loop = True
    assert health.service_readiness(service, None)() is None  # no clock: no query

    class Failing:
        def is_empty(self) -> Deferred[bool]:
            return fail(StoreUnavailable("connection refused"))

    failing = health.service_readiness(FakeStoreService(Failing(), True), feed, clock=clock)
    assert "connection refused" in done(failing())  # type: ignore[arg-type]

    class Hanging:
        def is_empty(self) -> Deferred[bool]:
            return Deferred()

    hanging = health.service_readiness(FakeStoreService(Hanging(), True), feed, clock, 2.0)
    d = hanging()
    assert isinstance(d, Deferred) and not d.called
    clock.advance(2.0)
    assert done(d) == "the store did not answer within 2s"


# -- metrics ----------------------------------------------------------------------------------


def metrics_api(store: SqliteStore, metrics: Metrics, extra: list[Any] | None = None) -> Api:
    ctx = AppContext(
        store=store,
        clock=Clock(),
        extra_routes=[functools.partial(install_metrics, metrics=metrics), *(extra or [])],
    )
    app = build_app(ctx)
    root = MetricsResource(CorsResource(app.resource(), ["*"]), metrics, app.url_map)
    return Api(StubTreq(root))


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the text exposition format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(rf"{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def scrape(api: Api) -> str:
    resp, raw = api.call("GET", "/metrics")
    assert resp.code == 200
    assert resp.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def test_requests_counted_by_route_template(store: SqliteStore) -> None:
    api = metrics_api(store, Metrics(Clock()))
    for board in ["demo", "nope", "other1", "other2"]:
        api.call("GET", f"/boards/{board}/")
    api.call("GET", "/boards/demo")  # the same route without the slash
    api.call("POST", "/boards/demo/players/stan/score-add/", json_body={"amount": 2})
    api.call("POST", "/boards/demo/players/stan/score-add/", json_body={"amount": "x"})
    api.call("PUT", "/boards/demo/")
    api.call("GET", "/no/such/path/at/all")
    api.call("BREW", "/boards/")
    counts = samples(scrape(api), "leaderboard_http_requests_total")
    assert counts['{method="GET",route="/boards/{board}/",status="200"}'] == 2
    assert counts['{method="GET",route="/boards/{board}/",status="404"}'] == 3
    score_route = "/boards/{board}/players/{player}/score-add/"
    assert counts[f'{{method="POST",route="{score_route}",status="200"}}'] == 1
    assert counts[f'{{method="POST",route="{score_route}",status="400"}}'] == 1
    assert counts['{method="PUT",route="/boards/{board}/",status="405"}'] == 1
    assert counts['{method="GET",route="unmatched",status="404"}'] == 1
    assert counts['{method="OTHER",route="/boards/",status="405"}'] == 1
    assert not any("demo" in labels or "nope" in labels for labels in counts)
    latency = samples(scrape(api), "leaderboard_http_request_duration_seconds_count")
    assert latency['{method="GET",route="/boards/{board}/"}'] == 5


def test_route_template() -> None:
    app = Klein()

    @app.route("/a/<x>/", methods=["GET"], strict_slashes=False)
    def a(request: IRequest, x: str) -> str:
        return x

    assert route_template(app.url_map, "GET", "/a/1/") == "/a/{x}/"
    assert route_template(app.url_map, "GET", "/a/1") == "/a/{x}/"
    assert route_template(app.url_map, "POST", "/a/1/") == "/a/{x}/"
    assert route_template(app.url_map, "GET", "/b/") == "unmatched"


def test_event_streams_are_counted_not_timed(store: SqliteStore) -> None:
    def stream_route(app: Klein, ctx: AppContext) -> None:
        @app.route("/fake-stream", methods=["GET"])
        def fake(request: IRequest) -> bytes:
            request.setHeader(b"Content-Type", b"text/event-stream")
            return b"event: update\ndata: {}\n\n"

    api = metrics_api(store, Metrics(Clock()), [stream_route])
    api.call("GET", "/fake-stream")
    text = scrape(api)
    counts = samples(text, "leaderboard_http_requests_total")
    assert counts['{method="GET",route="/fake-stream",status="200"}'] == 1
    assert '{method="GET",route="/fake-stream"}' not in samples(
        text, "leaderboard_http_request_duration_seconds_count"
    )


def test_latency_uses_the_injected_clock(store: SqliteStore) -> None:
    clock = Clock()
    metrics = Metrics(clock)
    gate: Deferred[bytes] = Deferred()

    def slow_route(app: Klein, ctx: AppContext) -> None:
        @app.route("/slow", methods=["GET"])
        def slow(request: IRequest) -> Deferred[bytes]:
            return gate

    api = metrics_api(store, metrics, [slow_route])
    d = api.stub.request("GET", "http://test/slow")
    clock.advance(0.3)
    gate.callback(b"done")
    api.stub.flush()
    assert done(d).code == 200
    text = scrape(api)
    buckets = samples(text, "leaderboard_http_request_duration_seconds_bucket")
    assert buckets['{le="0.25",method="GET",route="/slow"}'] == 0
    assert buckets['{le="0.5",method="GET",route="/slow"}'] == 1


def test_sources_and_feed_lag(store: SqliteStore) -> None:
    metrics = Metrics(Clock())
    hub = SseHub(Clock())
    hub.events_sent = 11

    class Publisher:
        published, failed, dropped = 5, 2, 1

    metrics.watch(hub=hub, feed=FakeFeed(), publisher=Publisher())
    metrics.observe_feed_lag(0.06)
    metrics.observe_feed_lag(-1.0)  # a clock step back is counted as no lag
    text = scrape(metrics_api(store, metrics))
    assert samples(text, "leaderboard_sse_streams_open") == {"": 0}
    assert samples(text, "leaderboard_sse_events_sent_total") == {"": 11}
    assert samples(text, "leaderboard_feed_events_total") == {"": 3}
    assert samples(text, "leaderboard_feed_changes_total") == {"": 7}
    assert samples(text, "leaderboard_feed_loop_running") == {"": 1}
    assert samples(text, "leaderboard_grip_published_total") == {"": 5}
    assert samples(text, "leaderboard_grip_publish_failures_total") == {"": 2}
    lag = samples(text, "leaderboard_feed_lag_seconds_bucket")
    assert lag['{le="0.01"}'] == 1 and lag['{le="0.075"}'] == 2


def test_registries_are_per_instance(store: SqliteStore) -> None:
    first, second = Metrics(Clock()), Metrics(Clock())
    metrics_api(store, first).call("GET", "/boards/demo/")
    text = scrape(metrics_api(store, second))
    assert "/boards/{board}/" not in text


def test_openmetrics_on_request(store: SqliteStore) -> None:
    api = metrics_api(store, Metrics(Clock()))
    resp, raw = api.call(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.headers.getRawHeaders(b"content-type")[0].startswith(
        b"application/openmetrics-text"
    )
    assert raw.rstrip().endswith(b"# EOF")


def test_feed_reports_its_lag() -> None:
    clock = Clock()
    s = SqliteStore(":memory:", clock, inline=True)  # type: ignore[arg-type]
    done(s.start())
    done(seed_demo(s))
    lags: list[float] = []

    class Sink:
        def wants(self, board: str) -> bool:
            return True

        def publish(self, board: str, event: Any) -> None:
            pass

    feed = BoardFeed(s, [Sink()], clock, window=0.05, lag_observer=lags.append)
    feed.startService()
    try:
        done(s.add_score("demo", "stan", 1))  # after a quiet window: read at once
        clock.advance(0)
        assert lags == [0.0]
        done(s.add_score("demo", "kyle", 1))  # within the window: waits for its end
        clock.advance(0.02)
        done(s.add_score("demo", "kenny", 1))  # same burst: one event, lag from the first
        clock.advance(0.03)
        assert lags == [0.0, pytest.approx(0.05)]
        clock.advance(1.0)
        done(s.add_score("demo", "butters", -100))  # a new burst: its lag starts afresh
        clock.advance(0)
        assert lags == [0.0, pytest.approx(0.05), 0.0]
    finally:
        feed.stopService()
        done(s.stop())


# -- a real process -----------------------------------------------------------------------------


def test_real_server_probes_and_metrics(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3"]).start()
    stream: Any = None
    try:
        proc.wait_for_line(r"demo board ready")
        url = proc.url
        with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        with urllib.request.urlopen(url + "/readyz", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read()) == {"status": "ready"}
        stream = urllib.request.urlopen(
            urllib.request.Request(url + "/boards/demo/", headers={"Accept": "text/event-stream"}),
            timeout=10,
        )
        first = stream.readline()
        assert first.startswith(b"event: update")
        got_second = threading.Event()

        def read_more() -> None:
            while True:
                line = stream.readline()
                if not line:
                    return
                if line.startswith(b"event: update"):
                    got_second.set()
                    return

        reader = threading.Thread(target=read_more, daemon=True)
        reader.start()
        req = urllib.request.Request(
            url + "/boards/demo/players/butters/score-add/",
            data=b'{"amount": 100}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()
        assert got_second.wait(10)
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert samples(text, "leaderboard_sse_streams_open") == {"": 1}
        assert samples(text, "leaderboard_feed_events_total")[""] >= 1
        assert samples(text, "leaderboard_sse_events_sent_total")[""] >= 1
        assert samples(text, "leaderboard_feed_lag_seconds_count")[""] >= 1
        assert samples(text, "leaderboard_feed_loop_running") == {"": 1}
        counts = samples(text, "leaderboard_http_requests_total")
        route = "/boards/{board}/players/{player}/score-add/"
        assert counts[f'{{method="POST",route="{route}",status="200"}}'] == 1
        assert counts['{method="GET",route="/readyz",status="200"}'] == 1
    finally:
        if stream is not None:
            stream.close()
        assert proc.stop() == 0
