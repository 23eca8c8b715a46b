"""CORS: allowed origins, preflights, exposed headers, and what a refused origin sees."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from leaderboard.config import ConfigError, load_config
from leaderboard.resources import AppContext, build_app
from leaderboard.resources.cors import CorsResource, parse_cors_origins, routed_methods
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore
from leaderboard.tap import Options
from tests.harness.server import ServerProcess
from tests.test_api import Api, assert_error, done

SITE = "https://scores.example.com"


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    s = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(s.start())
    done(seed_demo(s))
    yield s
    done(s.stop())


def make_api(store: SqliteStore, origins: list[str]) -> Api:
    app = build_app(AppContext(store=store, clock=Clock()))
    return Api(StubTreq(CorsResource(app.resource(), origins)))


def header(resp: Any, name: str) -> list[str]:
    return [v.decode() for v in resp.headers.getRawHeaders(name.encode(), [])]


def preflight(api: Api, origin: str, method: str = "POST", path: str = "/boards/") -> Any:
    resp, _ = api.call(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return resp


def test_parse_origins() -> None:
    assert parse_cors_origins(None) == ["*"]
    assert parse_cors_origins("") == ["*"]
    assert parse_cors_origins(" * ") == ["*"]
    assert parse_cors_origins("https://A.example.com/, http://localhost:3000") == [
        "https://a.example.com",
        "http://localhost:3000",
    ]
    for bad in [
        "null",
        "example.com",
        "ftp://example.com",
        "https://example.com/path",
        "https://example.com?q=1",
        "https://user@example.com",
        "https://example.com:99999",
        "*, https://example.com",
    ]:
        with pytest.raises(ValueError):
            parse_cors_origins(bad)


def test_any_origin_by_default(store: SqliteStore) -> None:
    api = make_api(store, ["*"])
    resp, data = api.call("GET", "/boards/demo/", headers={"Origin": SITE})
    assert resp.code == 200 and data["id"] == "demo"
    assert header(resp, "Access-Control-Allow-Origin") == ["*"]
    assert "Location" in header(resp, "Access-Control-Expose-Headers")[0]
    assert header(resp, "Access-Control-Allow-Credentials") == []
    vary = ",".join(header(resp, "Vary"))
    assert "Origin" not in vary and "Accept" in vary


def test_any_origin_preflight(store: SqliteStore) -> None:
    resp = preflight(make_api(store, ["*"]), SITE)
    assert resp.code == 204
    assert header(resp, "Access-Control-Allow-Origin") == ["*"]
    methods = {m.strip() for m in header(resp, "Access-Control-Allow-Methods")[0].split(",")}
    assert methods == {"GET", "POST", "OPTIONS"}
    allowed = {h.strip().lower() for h in header(resp, "Access-Control-Allow-Headers")[0].split(",")}
    assert allowed == {"content-type", "authorization", "last-event-id"}
    assert int(header(resp, "Access-Control-Max-Age")[0]) > 0
    assert header(resp, "Access-Control-Allow-Credentials") == []


def test_preflight_methods_from_the_routes(store: SqliteStore) -> None:
    app = build_app(AppContext(store=store, clock=Clock()))
    methods = routed_methods(app.url_map)
    assert {"GET", "POST"} <= methods
    api = Api(StubTreq(CorsResource(app.resource(), ["*"], methods)))
    resp = preflight(api, SITE)
    allowed = {m.strip() for m in header(resp, "Access-Control-Allow-Methods")[0].split(",")}
    assert allowed == (methods - {"HEAD"}) | {"OPTIONS"}


def test_listed_origin_is_echoed(store: SqliteStore) -> None:
    api = make_api(store, [SITE, "http://localhost:3000"])
    resp, _ = api.call(
        "POST", "/boards/", json_body={"id": "chess", "name": "Chess"}, headers={"Origin": SITE}
    )
    assert resp.code == 201
    assert header(resp, "Access-Control-Allow-Origin") == [SITE]
    assert "Origin" in ",".join(header(resp, "Vary"))
    assert "Location" in header(resp, "Access-Control-Expose-Headers")[0]
    resp = preflight(api, "http://localhost:3000", "POST", "/boards/demo/players/stan/score-add/")
    assert resp.code == 204
    assert header(resp, "Access-Control-Allow-Origin") == ["http://localhost:3000"]
    assert "Origin" in ",".join(header(resp, "Vary"))


def test_vary_keeps_accept_and_origin_on_the_board(store: SqliteStore) -> None:
    api = make_api(store, [SITE])
    resp, _ = api.call("GET", "/boards/demo/", headers={"Origin": SITE})
    vary = {v.strip() for line in header(resp, "Vary") for v in line.split(",")}
    assert {"Accept", "Origin"} <= vary


def test_other_origin_gets_no_cors_headers(store: SqliteStore) -> None:
    api = make_api(store, [SITE])
    resp, _ = api.call(
        "GET", "/boards/demo/players/stan/", headers={"Origin": "https://evil.example"}
    )
    assert resp.code == 200  # the server answers; the browser hides it from the page
    assert header(resp, "Access-Control-Allow-Origin") == []
    assert header(resp, "Access-Control-Expose-Headers") == []
    assert "Origin" in ",".join(header(resp, "Vary"))
    resp = preflight(api, "https://evil.example")
    assert resp.code == 403
    assert header(resp, "Access-Control-Allow-Origin") == []
    assert header(resp, "Access-Control-Allow-Methods") == []
    raw = done(api.stub.content(resp))
    assert b'"code":"forbidden"' in raw


def test_errors_carry_cors_headers(store: SqliteStore) -> None:
    api = make_api(store, [SITE])
    resp, data = api.call("GET", "/boards/nope/", headers={"Origin": SITE})
    assert_error(resp, data, 404, "not_found")
    assert header(resp, "Access-Control-Allow-Origin") == [SITE]
    resp, data = api.call("PUT", "/boards/demo/", headers={"Origin": SITE})
    assert_error(resp, data, 405, "method_not_allowed")
    assert header(resp, "Access-Control-Allow-Origin") == [SITE]


def test_plain_options_is_not_a_preflight(store: SqliteStore) -> None:
    api = make_api(store, ["*"])
    resp, data = api.call("OPTIONS", "/boards/", headers={"Origin": SITE})
    assert_error(resp, data, 405, "method_not_allowed")
    assert "POST" in header(resp, "Allow")[0]
    # No Origin: not a CORS request at all, whatever else it carries.
    resp, data = api.call("OPTIONS", "/boards/", headers={"Access-Control-Request-Method": "POST"})
    assert resp.code == 405


def test_config_origins() -> None:
    assert load_config({}, {}).cors_origins == ("*",)
    config = load_config({"LEADERBOARD_CORS_ORIGINS": f"{SITE},http://localhost:3000"}, {})
    assert config.cors_origins == (SITE, "http://localhost:3000")
    options = Options()
    options.parseOptions(["--cors-origins", "http://localhost:8080"])
    assert options.config.cors_origins == ("http://localhost:8080",)
    with pytest.raises(ConfigError) as info:
        load_config({"LEADERBOARD_CORS_ORIGINS": "example.com"}, {})
    assert "LEADERBOARD_CORS_ORIGINS" in str(info.value)


def test_real_server_preflight_and_headers(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3"],
        env={"LEADERBOARD_CORS_ORIGINS": SITE},
    ).start()
    try:
        proc.wait_for_line(r"demo board ready")
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
        conn.request(
            "OPTIONS",
            "/boards/demo/players/stan/score-add/",
            headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204
        assert resp.getheader("Access-Control-Allow-Origin") == SITE
        conn.request("GET", "/boards/demo/", headers={"Origin": "https://evil.example"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.getheader("Access-Control-Allow-Origin") is None
        conn.close()
    finally:
        assert proc.stop() == 0
