"""twistd on RethinkDB, real processes: the wire-protocol test server (or a real RethinkDB
when LEADERBOARD_TEST_RETHINKDB_URL is set), behind a TCP proxy that can cut it off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.rethinkdb import Database, rethink_database
from tests.harness.server import ServerProcess
from tests.harness.sse import SseClient
from tests.harness.tcpproxy import TcpProxy
from tests.test_integration import http


@pytest.fixture
def database(tmp_path: Path) -> Any:
    with rethink_database(tmp_path) as db:
        yield db


@pytest.fixture
def proxy(database: Database) -> Any:
    p = TcpProxy(database.host, database.port)
    yield p
    p.close()


def start(tmp_path: Path, proxy: TcpProxy, database: Database, **kw: Any) -> ServerProcess:
    return ServerProcess(
        tmp_path, ["--database-url", f"rethinkdb://127.0.0.1:{proxy.port}/{database.db}"]
    ).start(**kw)


def test_rest_contract_and_restart_on_rethinkdb(
    tmp_path: Path, proxy: TcpProxy, database: Database
) -> None:
    server = start(tmp_path, proxy, database)
    try:
        status, board = http("GET", server.url + "/boards/demo/")
        assert status == 200 and [p["id"] for p in board["players"]] == [
            "stan",
            "kyle",
            "kenny",
            "eric",
            "butters",
        ]
        assert http("POST", server.url + "/boards/", {"id": "go", "name": "Go"})[0] == 201
        assert http("POST", server.url + "/boards/", {"id": "go", "name": "Go"})[0] == 409
        assert (
            http("POST", server.url + "/boards/go/players/", {"id": "lee", "name": "Lee"})[0] == 201
        )
        status, p = http("POST", server.url + "/boards/go/players/lee/score-add/", {"amount": 9})
        assert (status, p["score"], p["rank"]) == (200, 9, 1)
        status, err = http("POST", server.url + "/boards/go/players/nobody/score-add/")
        assert status == 404 and err["error"]["code"] == "not_found"
        status, p = http("GET", server.url + "/boards/demo/players/kenny/")
        assert (p["score"], p["rank"]) == (8, 3)
    finally:
        assert server.stop() == 0
    again = start(tmp_path, proxy, database)
    try:
        status, p = http("GET", again.url + "/boards/go/players/lee/")
        assert (status, p["score"]) == (200, 9)
        assert "demo board ready" not in again.output()
    finally:
        again.stop()


def test_a_write_from_outside_the_api_reaches_a_listener(
    tmp_path: Path, proxy: TcpProxy, database: Database
) -> None:
    server = start(tmp_path, proxy, database)
    client = SseClient(server.url + "/boards/demo/").start()
    try:
        assert client.wait_for(lambda c: len(c.events) >= 1)
        r = database.r
        database.run(r.table("players").get("demo/kenny").update({"score": 500}))
        assert client.wait_for(lambda c: c.score_of("kenny") == 500, 10), client.events[-1:]
        assert client.boards()[-1]["players"][0]["id"] == "kenny"
    finally:
        client.close()
        server.stop()


def test_database_outage_503_then_recovery_to_the_current_state(
    tmp_path: Path, proxy: TcpProxy, database: Database
) -> None:
    server = start(tmp_path, proxy, database)
    client = SseClient(server.url + "/boards/demo/").start()
    try:
        assert client.wait_for(lambda c: len(c.events) >= 1)
        proxy.sever()
        status, err = http(
            "POST", server.url + "/boards/demo/players/eric/score-add/", {"amount": 1}
        )
        assert status == 503 and err["error"]["code"] == "unavailable"
        status, err = http("GET", server.url + "/boards/demo/")
        assert status == 503
        # Meanwhile the board changes behind the server's back.
        r = database.r
        database.run(r.table("players").get("demo/eric").update({"score": 900}))
        proxy.restore()
        # The server reconnects by itself; the listener ends at the true current state.
        assert client.wait_for(lambda c: c.score_of("eric") == 900, 20), client.events[-1:]
        deadline_ok = False
        for _ in range(100):
            status, p = http(
                "POST", server.url + "/boards/demo/players/eric/score-add/", {"amount": 1}
            )
            if status == 200:
                deadline_ok = True
                break
            import time

            time.sleep(0.1)
        assert deadline_ok and p["score"] == 901
        assert client.wait_for(lambda c: c.score_of("eric") == 901, 10)
    finally:
        client.close()
        server.stop()


def test_store_unreachable_at_start_then_recovers(
    tmp_path: Path, proxy: TcpProxy, database: Database
) -> None:
    proxy.sever()
    server = start(tmp_path, proxy, database, wait_ready=False)
    try:
        status, err = http("GET", server.url + "/boards/demo/")
        assert status == 503 and err["error"]["code"] == "unavailable"
        proxy.restore()
        server.wait_for_line(r"StoreService#info\] store ready", 30)
        status, board = http("GET", server.url + "/boards/demo/")
        assert status == 200 and board["id"] == "demo"
    finally:
        server.stop()


def test_test_server_stopped_mid_stream_and_started_again(tmp_path: Path) -> None:
    """The database process itself goes away and comes back on the same port with its data
    (always the wire-protocol test server: a real one cannot be stopped from here; the
    proxy-cut test above covers a real server)."""
    import re
    import subprocess
    import sys

    from tests.harness.server import ROOT

    data = tmp_path / "db.json"

    def start_db(port: int = 0) -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reqlserver", "--port", str(port), "--data", str(data)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert m
        return proc, int(m.group(1))

    db, port = start_db()
    server = ServerProcess(
        tmp_path / "web", ["--database-url", f"rethinkdb://127.0.0.1:{port}/leaderboard"]
    ).start()
    client = SseClient(server.url + "/boards/demo/").start()
    try:
        assert client.wait_for(lambda c: len(c.events) >= 1)
        db.terminate()
        db.wait(10)
        status, err = http(
            "POST", server.url + "/boards/demo/players/kyle/score-add/", {"amount": 5}
        )
        assert status == 503 and err["error"]["code"] == "unavailable"
        db, _ = start_db(port)
        import time

        deadline = time.monotonic() + 30
        while True:
            status, p = http(
                "POST", server.url + "/boards/demo/players/kyle/score-add/", {"amount": 5}
            )
            if status == 200:
                break
            assert status == 503 and time.monotonic() < deadline
            time.sleep(0.1)
        assert p["score"] == 15  # the write during the outage was refused, not half-applied
        assert client.wait_for(lambda c: c.score_of("kyle") == 15, 15), client.events[-1:]
    finally:
        client.close()
        server.stop()
        db.terminate()
        db.wait(10)
