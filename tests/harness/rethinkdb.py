"""A RethinkDB for process-level tests: the wire-protocol test server in its own process,
or a real server (fresh database, dropped after) when LEADERBOARD_TEST_RETHINKDB_URL is set."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rethinkdb import RethinkDB

from tests.harness.server import ROOT
from tests.rethink_fixture import real_server_url


class Database:
    """Where the database is: host, port, db name; and a blocking driver connection for
    writes made from outside the API (never on the reactor: callers are synchronous)."""

    def __init__(self, host: str, port: int, db: str) -> None:
        self.host, self.port, self.db = host, port, db
        self.r = RethinkDB()

    @property
    def url(self) -> str:
        return f"rethinkdb://{self.host}:{self.port}/{self.db}"

    def run(self, query: Any) -> Any:
        conn = self.r.connect(host=self.host, port=self.port, db=self.db, timeout=10)
        try:
            return query.run(conn)
        finally:
            conn.close()


@contextmanager
def rethink_database(tmp_path: Path) -> Iterator[Database]:
    url = real_server_url()
    if url:
        from leaderboard.store.rethink import parse_rethink_url

        settings = parse_rethink_url(url)
        db = Database(settings.host, settings.port, f"lb_it_{uuid.uuid4().hex[:10]}")
        try:
            yield db
        finally:
            try:
                db.run(db.r.db_drop(db.db))
            except Exception:  # noqa: S110 - nothing was created
                pass
        return
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reqlserver",
            "--port",
            "0",
            "--data",
            str(tmp_path / "r.json"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        yield Database("127.0.0.1", int(m.group(1)), "leaderboard")
    finally:
        proc.terminate()
        proc.wait(10)
