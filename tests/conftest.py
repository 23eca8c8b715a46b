"""Shared fixtures: the store kinds the behaviour suite runs on, and process helpers."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from leaderboard.store.sqlite import SqliteStore

# The rethinkdb driver calls the deprecated returnValue thousands of times per run.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"rethinkdb(\..*)?")

STORE_KINDS = ["sqlite", "rethinkdb"]


@pytest_twisted.async_yield_fixture(params=STORE_KINDS)
async def store(request: Any, tmp_path: Any) -> AsyncIterator[Any]:
    """A started, empty store of each kind (RethinkDB: the wire-protocol test server, or a
    real server when LEADERBOARD_TEST_RETHINKDB_URL is set)."""
    if request.param == "sqlite":
        s = SqliteStore(str(tmp_path / "store.sqlite3"), reactor)
        await s.start()
        try:
            yield s
        finally:
            await s.stop()
    else:
        from tests.rethink_fixture import rethink_store

        s, cleanup = await rethink_store(reactor)
        try:
            yield s
        finally:
            await cleanup()


def pytest_report_header(config: Any) -> str:
    url = os.environ.get("LEADERBOARD_TEST_RETHINKDB_URL")
    where = f"real RethinkDB at {url}" if url else "the wire-protocol test server"
    return f"leaderboard: RethinkDB tests run against {where}"
