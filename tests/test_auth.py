"""Write authorization with API keys: 401/403 as JSON, reads stay public, keys never leak."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from leaderboard.config import ConfigError, load_config
from leaderboard.resources import AppContext, auth, build_app
from leaderboard.resources.auth import Forbidden, Unauthorized, make_authorizer, parse_api_keys
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore
from tests.harness.server import ServerProcess
from tests.test_api import Api, assert_error, done


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    """An in-memory store with the demo board (as in tests/test_api.py)."""
    s = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(s.start())
    done(seed_demo(s))
    yield s
    done(s.stop())


KEYS = ["k3y-one_ABCDEFGHIJKLMNOP", "second.key~+/="]

WRITES: list[tuple[str, Any]] = [
    ("/boards/", {"id": "chess", "name": "Chess"}),
    ("/boards/demo/players/", {"id": "wendy", "name": "Wendy"}),
    ("/boards/demo/players/stan/score-add/", {"amount": 5}),
]


def make_api(store: SqliteStore, keys: list[str]) -> Api:
    ctx = AppContext(
        store=store,
        clock=Clock(),
        writes_need_key=bool(keys),
        authorize_write=make_authorizer(keys),
    )
    return Api(StubTreq(build_app(ctx).resource()))


@pytest.fixture
def locked(store: SqliteStore) -> Api:
    return make_api(store, KEYS)


def stan_score(api: Api) -> int:
    _, data = api.call("GET", "/boards/demo/players/stan/")
    return int(data["score"])


def test_parse_api_keys() -> None:
    assert parse_api_keys(None) == []
    assert parse_api_keys("") == []
    assert parse_api_keys(" a1 , ,b2,") == ["a1", "b2"]
    for bad in ["has space", "semi;colon", "quote\"", "é"]:
        with pytest.raises(ValueError) as info:
            parse_api_keys("good," + bad)
        assert bad not in str(info.value)
        assert "key 2" in str(info.value)


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_write_without_key_is_401_with_challenge(locked: Api, path: str, body: Any) -> None:
    before = stan_score(locked)
    resp, data = locked.call("POST", path, json_body=body)
    assert_error(resp, data, 401, "unauthorized")
    assert resp.headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="leaderboard"']
    assert stan_score(locked) == before


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + "dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer two tokens",
        "Bearer bad\u00e9",
        "Token " + KEYS[0],
        KEYS[0],
    ],
)
def test_malformed_authorization_is_401(locked: Api, header: str) -> None:
    resp, data = locked.call(
        "POST", "/boards/demo/players/stan/score-add/", headers={"Authorization": header}
    )
    assert_error(resp, data, 401, "unauthorized")
    assert resp.headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="leaderboard"']


def test_two_authorization_headers_are_401(locked: Api) -> None:
    resp = locked.stub.request(
        "POST",
        "http://test/boards/demo/players/stan/score-add/",
        headers={b"Authorization": [f"Bearer {KEYS[0]}".encode(), f"Bearer {KEYS[1]}".encode()]},
    )
    assert done(resp).code == 401


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_wrong_key_is_403(locked: Api, path: str, body: Any) -> None:
    before = stan_score(locked)
    for wrong in ["nope", KEYS[0][:-1], KEYS[0] + "x", KEYS[1].upper()]:
        resp, data = locked.call(
            "POST", path, json_body=body, headers={"Authorization": f"Bearer {wrong}"}
        )
        assert_error(resp, data, 403, "forbidden")
        assert resp.headers.getRawHeaders(b"www-authenticate") is None
    assert stan_score(locked) == before


def test_every_configured_key_writes(locked: Api) -> None:
    resp, data = locked.call(
        "POST", "/boards/", json_body={"id": "chess", "name": "Chess"},
        headers={"Authorization": f"Bearer {KEYS[1]}"},
    )
    assert resp.code == 201 and data["id"] == "chess"
    resp, data = locked.call(
        "POST", "/boards/chess/players/", json_body={"id": "magnus", "name": "Magnus"},
        headers={"Authorization": f"bearer   {KEYS[0]}"},
    )
    assert resp.code == 201
    resp, data = locked.call(
        "POST", "/boards/chess/players/magnus/score-add/", json_body={"amount": 7},
        headers={"Authorization": f"BEARER {KEYS[1]}"},
    )
    assert resp.code == 200 and data["score"] == 7


def test_auth_comes_before_input_checks(locked: Api) -> None:
    # An unauthenticated client learns nothing about ids or bodies.
    resp, data = locked.call("POST", "/boards/nope/players/x/score-add/", body=b"{oops")
    assert_error(resp, data, 401, "unauthorized")


@pytest.mark.parametrize(
    "path", ["/boards/", "/boards/demo/", "/boards/demo/players/stan/", "/", "/boards/demo"]
)
def test_reads_stay_public(locked: Api, path: str) -> None:
    resp, _ = locked.call("GET", path)
    assert resp.code == 200


def test_no_keys_means_open_writes(store: SqliteStore) -> None:
    api = make_api(store, [])
    resp, data = api.call("POST", "/boards/demo/players/stan/score-add/")
    assert resp.code == 200 and data["score"] == 13


def test_compares_against_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    keys = ["first", "second", "third"]
    check = make_authorizer(keys)

    class Req:
        def __init__(self, value: bytes) -> None:
            from twisted.web.http_headers import Headers

            self.requestHeaders = Headers({b"Authorization": [value]})
            self.method, self.path = b"POST", b"/boards/"
            self.set: dict[bytes, bytes] = {}

        def setHeader(self, name: bytes, value: bytes) -> None:
            self.set[name] = value

    check(Req(b"Bearer first"))  # type: ignore[arg-type]
    assert len(calls) == 3  # no early exit on the first key
    calls.clear()
    with pytest.raises(Forbidden):
        check(Req(b"Bearer other"))  # type: ignore[arg-type]
    assert len(calls) == 3
    # Fixed-length digests are compared, so neither the keys' lengths nor their text
    # reach the comparison.
    assert {len(a) for a, _ in calls} == {32} and {len(b) for _, b in calls} == {32}
    req = Req(b"Basic x")
    with pytest.raises(Unauthorized):
        check(req)  # type: ignore[arg-type]
    assert req.set[b"WWW-Authenticate"] == auth.CHALLENGE


def test_keys_never_logged(locked: Api) -> None:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for header in [f"Bearer {KEYS[0]}x", f"Bearer {KEYS[1]}", "Basic abc"]:
            locked.call(
                "POST", "/boards/demo/players/stan/score-add/", headers={"Authorization": header}
            )
    finally:
        globalLogPublisher.removeObserver(events.append)
    text = "\n".join(str(formatEvent(e)) + repr(e) for e in events)
    for key in KEYS:
        assert key not in text


def test_config_reads_keys_from_environment_only() -> None:
    config = load_config({"LEADERBOARD_API_KEYS": ",".join(KEYS)}, {})
    assert list(config.api_keys) == KEYS
    assert KEYS[0] not in repr(config)
    assert load_config({}, {}).api_keys == ()
    with pytest.raises(ConfigError) as info:
        load_config({"LEADERBOARD_API_KEYS": "ok,not ok"}, {})
    assert "LEADERBOARD_API_KEYS" in str(info.value) and "not ok" not in str(info.value)


def _http(method: str, url: str, body: Any = None, key: str | None = None) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_real_server_with_keys(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3"],
        env={"LEADERBOARD_API_KEYS": ",".join(KEYS)},
    ).start()
    try:
        proc.wait_for_line(r"demo board ready")
        url = proc.url
        status, headers, data = _http("POST", url + "/boards/", {"name": "Go"})
        assert status == 401 and data["error"]["code"] == "unauthorized"
        assert headers["WWW-Authenticate"] == 'Bearer realm="leaderboard"'
        status, _, data = _http("POST", url + "/boards/", {"name": "Go"}, key="wrong")
        assert status == 403 and data["error"]["code"] == "forbidden"
        status, headers, data = _http("POST", url + "/boards/", {"id": "go", "name": "Go"}, KEYS[0])
        assert status == 201 and headers["Location"] == "/boards/go/"
        status, _, data = _http("GET", url + "/boards/go/")
        assert status == 200 and data["name"] == "Go"
    finally:
        assert proc.stop() == 0
    for key in KEYS:
        assert key not in proc.output()
    assert "writes need an API key (2 configured)" in proc.output()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_real_server_over_tls_endpoint(tmp_path: Path) -> None:
    """docs/security.md: ``--port ssl:...`` serves HTTPS with no proxy in front."""
    import ssl

    key_path, cert_path = _self_signed(tmp_path)
    proc = ServerProcess(
        tmp_path,
        ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3"],
        env={"LEADERBOARD_API_KEYS": KEYS[0]},
        port=f"ssl:0:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}",
    ).start()
    try:
        proc.wait_for_line(r"demo board ready")
        context = ssl.create_default_context(cafile=str(cert_path))
        req = urllib.request.Request(
            f"https://127.0.0.1:{proc.port}/boards/demo/players/stan/score-add/",
            data=b'{"amount": 1}',
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEYS[0]}"},
        )
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            assert resp.status == 200 and json.loads(resp.read())["score"] == 13
    finally:
        assert proc.stop() == 0
