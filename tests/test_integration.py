"""A real ``twistd -n leaderboard`` process on real sockets: REST, restarts, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.web.client import HTTPConnectionPool

from tests.harness.server import ServerProcess, twistd_path


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def server(tmp_path: Path) -> Any:
    proc = ServerProcess(tmp_path, ["--database-url", f"sqlite:///{tmp_path}/lb.sqlite3"])
    proc.start()
    yield proc
    proc.kill()


def test_demo_rest_and_restart_keeps_scores(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/lb.sqlite3"
    proc = ServerProcess(tmp_path, ["--database-url", db]).start()
    try:
        proc.wait_for_line(r"demo board ready: http://127\.0\.0\.1:\d+/boards/demo/")
        status, board = http("GET", proc.url + "/boards/demo/")
        assert status == 200 and len(board["players"]) == 5
        assert http("POST", proc.url + "/boards/", {"id": "chess", "name": "Chess"})[0] == 201
        for pid in ("magnus", "hikaru"):
            assert (
                http("POST", proc.url + "/boards/chess/players/", {"id": pid, "name": pid})[0]
                == 201
            )
        status, p = http(
            "POST", proc.url + "/boards/chess/players/magnus/score-add/", {"amount": 42}
        )
        assert (status, p["score"], p["rank"]) == (200, 42, 1)
        http("POST", proc.url + "/boards/demo/players/butters/score-add/", {"amount": 100})
        before = {b: http("GET", f"{proc.url}/boards/{b}/")[1] for b in ("demo", "chess")}
    finally:
        assert proc.stop() == 0
    again = ServerProcess(tmp_path, ["--database-url", db]).start()
    try:
        after = {b: http("GET", f"{again.url}/boards/{b}/")[1] for b in ("demo", "chess")}
        assert after == before
        assert after["demo"]["players"][0] == {
            "id": "butters",
            "name": "Butters",
            "score": 104,
            "rank": 1,
        }
        assert "demo board ready" not in again.output()  # not seeded twice
    finally:
        assert again.stop() == 0


def test_no_server_banner(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.url + "/boards/demo/", timeout=10) as resp:
        assert resp.headers.get("Server") is None


def test_errors_over_the_wire(server: ServerProcess) -> None:
    status, body = http(
        "POST", server.url + "/boards/demo/players/stan/score-add/", {"amount": "1"}
    )
    assert status == 400 and body["error"]["code"] == "invalid_input"
    big = b"{" + b" " * (70 * 1024) + b"}"
    req = urllib.request.Request(server.url + "/boards/", data=big, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 413
    assert json.loads(e.value.read())["error"]["code"] == "payload_too_large"


@pytest_twisted.ensureDeferred
async def test_200_concurrent_score_adds(server: ServerProcess) -> None:
    pool = HTTPConnectionPool(reactor, persistent=False)
    url = server.url + "/boards/demo/players/kenny/score-add/"

    async def add() -> int:
        resp = await treq.post(url, json={"amount": 1}, pool=pool)
        await resp.content()
        return resp.code  # type: ignore[no-any-return]

    from twisted.internet.defer import Deferred

    codes = await gatherResults([Deferred.fromCoroutine(add()) for _ in range(200)])
    assert codes == [200] * 200
    resp = await treq.get(server.url + "/boards/demo/players/kenny/", pool=pool)
    body = await resp.json()
    assert body["score"] == 8 + 200


def test_bad_configuration_is_refused_clearly(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [twistd_path(), "-n", "leaderboard", "--database-url", "mysql://x/y"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "unsupported DATABASE_URL" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_plugin_found_from_installed_package(tmp_path: Path) -> None:
    """``pip install .`` (not only -e) must make ``twistd leaderboard`` available."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [twistd_path(), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert "leaderboard" in out.stdout, out.stdout + out.stderr
