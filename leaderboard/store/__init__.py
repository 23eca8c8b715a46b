# -*- test-case-name: tests.test_store -*-
"""Persistence: the L{Store} interface and a factory choosing a backend from a URL."""

from __future__ import annotations

from typing import Any

from leaderboard.store._base import RESYNC, BoardSummary, Change, ChangeStream, Store

__all__ = [
    "RESYNC",
    "BoardSummary",
    "Change",
    "ChangeStream",
    "Store",
    "check_database_url",
    "open_store",
]


def check_database_url(url: str) -> str:
    """Validate a ``DATABASE_URL`` early, with a clear message; returns it unchanged."""
    if url.startswith("sqlite:"):
        from leaderboard.store.sqlite import sqlite_path

        sqlite_path(url)
    elif url.startswith("rethinkdb:"):
        from leaderboard.store.rethink import parse_rethink_url

        parse_rethink_url(url)
    else:
        raise ValueError(
            f"unsupported DATABASE_URL {url!r}: use sqlite:///path or rethinkdb://host:port/db"
        )
    return url


def open_store(url: str, reactor: Any) -> Store:
    """The store for a ``DATABASE_URL`` (not yet started)."""
    check_database_url(url)
    if url.startswith("sqlite:"):
        from leaderboard.store.sqlite import SqliteStore, sqlite_path

        return SqliteStore(sqlite_path(url), reactor)
    from leaderboard.store.rethink import RethinkStore

    return RethinkStore.from_url(url, reactor)  # type: ignore[no-any-return]
