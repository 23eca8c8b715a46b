"""Realtime end to end, real processes: twistd, zurl and Pushpin, SSE clients on sockets."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pushpin import pushpin_for
from tests.harness.server import ServerProcess
from tests.harness.sse import SseClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    """Pushpin in front of one twistd that publishes to it and checks Grip-Sig."""
    port = free_port()
    with pushpin_for(port) as pushpin:
        server = ServerProcess(
            tmp_path,
            ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3", "--keepalive", "2"],
            env={"GRIP_URL": pushpin.grip_url_verified},
            port=f"tcp:{port}:interface=127.0.0.1",
        ).start()
        try:
            yield server, pushpin
        finally:
            server.stop()


def wait_update(client: SseClient, player: str, score: int, timeout: float = 10.0) -> float:
    start = time.monotonic()
    ok = client.wait_for(lambda c: c.score_of(player) == score, timeout)
    assert ok, f"no update with {player}={score}; got {client.events[-3:]}"
    return time.monotonic() - start


@pytest.mark.parametrize("through", ["pushpin", "direct"])
def test_first_event_then_an_update_after_a_score_add(stack: Any, through: str) -> None:
    server, pushpin = stack
    base = pushpin.http_url if through == "pushpin" else server.url
    client = SseClient(base + "/boards/demo/").start()
    try:
        assert client.wait_for(lambda c: len(c.events) >= 1)
        assert client.status == 200
        assert client.response_headers["content-type"] == "text/event-stream"
        assert client.response_headers["cache-control"] == "no-cache"
        first = client.boards()[0]
        assert first["id"] == "demo" and len(first["players"]) == 5
        assert "grip-hold" not in client.response_headers  # the proxy consumes GRIP headers
        post(server.url + "/boards/demo/players/butters/score-add/", {"amount": 100})
        wait_update(client, "butters", 104)
        name, event_id, _ = client.events[-1]
        assert name == "update" and event_id and event_id != client.events[0][1]
        assert client.wait_for(lambda c: c.comments >= 1, 10)  # keep-alive every 2 s
    finally:
        client.close()


def test_200_listeners_each_way_all_get_the_update(stack: Any) -> None:
    server, pushpin = stack
    clients = [SseClient(pushpin.http_url + "/boards/demo/").start() for _ in range(100)]
    clients += [SseClient(server.url + "/boards/demo/").start() for _ in range(100)]
    try:
        for c in clients:
            assert c.wait_for(lambda c: len(c.events) >= 1, 20), c.status
        post(server.url + "/boards/demo/players/eric/score-add/", {"amount": 1000})
        missing = [
            i
            for i, c in enumerate(clients)
            if not c.wait_for(lambda c: c.score_of("eric") == 1006, 15)
        ]
        assert missing == []
    finally:
        for c in clients:
            c.close()


def test_a_forged_grip_sig_gets_a_native_stream(stack: Any) -> None:
    server, pushpin = stack
    import jwt

    forged = jwt.encode(
        {"iss": "pushpin", "exp": int(time.time()) + 600},
        "not-the-proxy-key-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    client = SseClient(server.url + "/boards/demo/", headers={"Grip-Sig": forged}).start()
    try:
        assert client.wait_for(lambda c: len(c.events) >= 1)
        assert "grip-hold" not in client.response_headers
        assert "grip-channel" not in client.response_headers
        post(server.url + "/boards/demo/players/kyle/score-add/", {"amount": 7})
        wait_update(client, "kyle", 17)  # a native stream, held by the server itself
    finally:
        client.close()


def test_a_genuine_grip_sig_gets_hold_instructions(stack: Any) -> None:
    server, pushpin = stack
    import jwt

    genuine = jwt.encode(
        {"iss": pushpin.sig_iss, "exp": int(time.time()) + 600}, pushpin.sig_key, algorithm="HS256"
    )
    req = urllib.request.Request(
        server.url + "/boards/demo/", headers={"Accept": "text/event-stream", "Grip-Sig": genuine}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Grip-Hold"] == "stream"
        assert resp.headers["Grip-Channel"] == "board-demo"
        body = resp.read()
    assert body.startswith(b"event: update\n")


def test_direct_stream_without_pushpin(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, ["--database-url", f"sqlite:///{tmp_path}/x.sqlite3"]) as server:
        client = SseClient(server.url + "/boards/demo/").start()
        try:
            assert client.wait_for(lambda c: len(c.events) >= 1)
            post(server.url + "/boards/demo/players/stan/score-add/")
            wait_update(client, "stan", 13)
        finally:
            client.close()


def test_many_web_processes_one_publisher_on_rethinkdb(tmp_path: Path) -> None:
    """The production topology: Pushpin in front of two stateless web processes on one
    RethinkDB; only one publishes, and a write through either reaches every listener."""
    from tests.harness.rethinkdb import rethink_database

    # The wire-protocol test server, or a real RethinkDB when the switch is set.
    with rethink_database(tmp_path) as db:
        url = db.url
        ports = [free_port(), free_port()]
        with pushpin_for(ports[0], routes=[f"* 127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"]) as pp:
            procs = [
                ServerProcess(
                    tmp_path / name,
                    ["--database-url", url, flag],
                    env={"GRIP_URL": pp.grip_url_verified},
                    port=f"tcp:{port}:interface=127.0.0.1",
                ).start()
                for name, flag, port in (
                    ("pub", "--publish", ports[0]),
                    ("web", "--no-publish", ports[1]),
                )
            ]
            publisher, web = procs
            clients = [SseClient(pp.http_url + "/boards/demo/").start() for _ in range(10)]
            try:
                for c in clients:
                    assert c.wait_for(lambda c: len(c.events) >= 1, 15)
                post(web.url + "/boards/demo/players/kenny/score-add/", {"amount": 100})
                for c in clients:
                    wait_update(c, "kenny", 108)
                post(publisher.url + "/boards/demo/players/kenny/score-add/", {"amount": 1})
                for c in clients:
                    wait_update(c, "kenny", 109)
                assert "published" in publisher.output()
                assert "published" not in web.output()
            finally:
                for c in clients:
                    c.close()
                for p in procs:
                    p.stop()
