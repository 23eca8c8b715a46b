"""Faults with real processes: a listener leaving, Pushpin's publish endpoint down, SIGTERM
in the middle of a write burst. (Database outages: tests/test_rethink_integration.py.)"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness.pushpin import pushpin_for
from tests.harness.server import ServerProcess
from tests.harness.sse import SseClient
from tests.harness.tcpproxy import TcpProxy
from tests.test_integration import http
from tests.test_realtime import free_port, post, wait_update


def metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name}(?:_total)? ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_metric(server: ServerProcess, name: str, value: float, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while metric(server, name) != value:
        assert time.monotonic() < deadline, f"{name} stayed at {metric(server, name)}"
        time.sleep(0.05)


def test_listeners_that_leave_are_forgotten(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, ["--database-url", f"sqlite:///{tmp_path}/f.sqlite3"]) as server:
        clients = [SseClient(server.url + "/boards/demo/").start() for _ in range(5)]
        for c in clients:
            assert c.wait_for(lambda c: len(c.events) >= 1)
        wait_metric(server, "leaderboard_sse_streams_open", 5)
        for c in clients[:3]:
            c.close()
        wait_metric(server, "leaderboard_sse_streams_open", 2)
        post(server.url + "/boards/demo/players/stan/score-add/")
        for c in clients[3:]:
            wait_update(c, "stan", 13)
            c.close()
        wait_metric(server, "leaderboard_sse_streams_open", 0)


def test_publish_endpoint_down_for_30_seconds(tmp_path: Path) -> None:
    """Pushpin's control endpoint unreachable for 30 s: the publisher retries with back-off,
    keeps only the latest event per board, and the last state gets through."""
    port = free_port()
    with pushpin_for(port) as pushpin:
        publish_port = int(pushpin.grip_url.rsplit(":", 1)[1])
        proxy = TcpProxy("127.0.0.1", publish_port)
        grip_url = pushpin.grip_url_verified.replace(f":{publish_port}", f":{proxy.port}")
        server = ServerProcess(
            tmp_path, ["--database-url", f"sqlite:///{tmp_path}/g.sqlite3"],
            env={"GRIP_URL": grip_url}, port=f"tcp:{port}:interface=127.0.0.1",
        ).start()
        client = SseClient(pushpin.http_url + "/boards/demo/").start()
        try:
            assert client.wait_for(lambda c: len(c.events) >= 1)
            proxy.sever()
            started = time.monotonic()
            for _ in range(20):
                post(server.url + "/boards/demo/players/eric/score-add/", {"amount": 10})
                time.sleep(0.5)
            assert metric(server, "leaderboard_grip_publish_failures") >= 1
            assert client.score_of("eric") == 6  # nothing got through meanwhile
            time.sleep(max(0.0, 30 - (time.monotonic() - started)))
            proxy.restore()
            wait_update(client, "eric", 206, timeout=45)
            assert metric(server, "leaderboard_grip_dropped") == 0
        finally:
            client.close()
            server.stop()
            proxy.close()


def test_sigterm_during_a_write_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/burst.sqlite3"
    server = ServerProcess(tmp_path, ["--database-url", db, "--access-log", "off"]).start()
    url = server.url + "/boards/demo/players/kenny/score-add/"
    acked = 0
    attempted = 0
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        nonlocal acked, attempted
        while not stop.is_set():
            with lock:
                attempted += 1
            req = urllib.request.Request(url, data=b'{"amount": 1}', method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200 and json.loads(resp.read())["score"] > 0:
                        with lock:
                            acked += 1
            except (urllib.error.URLError, OSError, ValueError):
                if stop.is_set():
                    return
                time.sleep(0.01)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert acked > 0
    began = time.monotonic()
    code = server.stop(timeout=10)
    took = time.monotonic() - began
    stop.set()
    for t in threads:
        t.join(10)
    assert code == 0, server.output()[-2000:]
    assert took < 10
    again = ServerProcess(tmp_path, ["--database-url", db]).start()
    try:
        status, player = http("GET", again.url + "/boards/demo/players/kenny/")
        assert status == 200
        applied = player["score"] - 8
        assert acked <= applied <= attempted, (acked, applied, attempted)
    finally:
        again.stop()


def test_a_stalled_reader_is_dropped(tmp_path: Path) -> None:
    """A client that stops reading: once its connection stops draining, it is sent nothing
    more (memory stays bounded) and after LEADERBOARD_STALL_SECONDS it is dropped, while a
    reading client keeps getting updates."""
    import socket

    server = ServerProcess(
        tmp_path,
        ["--database-url", f"sqlite:///{tmp_path}/s.sqlite3", "--top-n", "100",
         "--keepalive", "1", "--access-log", "off"],
        env={"LEADERBOARD_STALL_SECONDS": "2"},
    ).start()
    try:
        assert http("POST", server.url + "/boards/", {"id": "big", "name": "Big"})[0] == 201
        for i in range(100):
            http("POST", server.url + "/boards/big/players/", {"id": f"p{i:03d}", "name": "N" * 64})
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /boards/big/ HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        reader = SseClient(server.url + "/boards/big/").start()
        assert reader.wait_for(lambda c: len(c.events) >= 1)
        wait_metric(server, "leaderboard_sse_streams_open", 2)
        deadline = time.monotonic() + 90
        n = 0
        while metric(server, "leaderboard_sse_streams_open") != 1:
            assert time.monotonic() < deadline, "the stalled reader was never dropped"
            n += 1
            post(server.url + f"/boards/big/players/p{n % 100:03d}/score-add/", {"amount": n})
            time.sleep(0.02)
        score = http("GET", server.url + f"/boards/big/players/p{n % 100:03d}/")[1]["score"]
        wait_update(reader, f"p{n % 100:03d}", score)
        reader.close()
        stalled.close()
    finally:
        server.stop()
