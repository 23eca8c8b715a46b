# -*- test-case-name: tests.test_store -*-
"""The embedded store: SQLite (stdlib) on one dedicated worker thread, WAL-journaled."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from leaderboard.errors import AlreadyExists, NotFound, StoreUnavailable
from leaderboard.model import (
    Board,
    BoardView,
    Player,
    Standing,
    apply_operator,
    check_score,
    ranked_run,
)
from leaderboard.store._base import BoardSummary, Change, ChangeFanout, ChangeStream

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS boards (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS players (
    board TEXT NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    id    TEXT NOT NULL,
    name  TEXT NOT NULL,
    score INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (board, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS players_by_rank ON players (board, score DESC, id ASC);
CREATE INDEX IF NOT EXISTS players_by_rank_asc ON players (board, score ASC, id ASC);
"""

#: Columns added after the first release, with their definitions: added on open if missing.
_BOARD_COLUMNS = {
    "sort_order": "TEXT NOT NULL DEFAULT 'desc'",
    "operator": "TEXT NOT NULL DEFAULT 'incr'",
    "metadata": "TEXT NOT NULL DEFAULT '{}'",
}


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for absolute)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path)")
    return url[len(prefix) :]


class SqliteStore:
    """A L{leaderboard.store.Store} on a SQLite file.

    Every query runs on one worker thread that owns the connection, so the reactor never
    waits on disk. Writes are group-committed: those queued in one reactor turn go to the
    thread together and run in one ``BEGIN IMMEDIATE`` transaction (atomic even when another
    process shares the file), each in its own savepoint; their Deferreds fire, and their
    changes are announced to this process's L{changes} streams, only after the commit.
    """

    log = Logger()

    def __init__(self, path: str, reactor: IReactorThreads, inline: bool = False) -> None:
        """``inline=True`` runs queries on the caller's thread, synchronously: for in-memory
        unit tests only (the Deferreds fire at once), never for a server."""
        self._path = path
        self._inline = inline
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="leaderboard-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._fanout = ChangeFanout()
        self._queue: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self.ready = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        if self._conn is not None:
            return succeed(None)  # already open: a retried start-up is a no-op
        if not self._inline and not self._pool.started:
            self._pool.start()
        d = self._run(self._open)

        def opened(_: None) -> None:
            self.ready = True
            self.log.info("SQLite store open at {path}", path=self._path)

        return d.addCallback(opened)

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(boards)")}
        for column, definition in _BOARD_COLUMNS.items():
            if column not in have:
                conn.execute(f"ALTER TABLE boards ADD COLUMN {column} {definition}")
        self._conn = conn

    def stop(self) -> Deferred[None]:
        self.ready = False
        self._fanout.close_all()
        if self._inline:
            self._close()
            return succeed(None)
        if not self._pool.started:
            return succeed(None)
        d = self._run(self._close)

        def stop_pool(result: object) -> object:
            self._pool.stop()
            return result

        d.addBoth(stop_pool)
        return d

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, f: Callable[..., T], *args: object) -> Deferred[T]:
        def guarded() -> T:
            try:
                return f(*args)
            except sqlite3.OperationalError as e:
                raise StoreUnavailable(f"database error: {e}") from None

        if self._inline:
            return maybeDeferred(guarded)
        return deferToThreadPool(self._reactor, self._pool, guarded)  # type: ignore[arg-type]

    def _write(self, f: Callable[[], T]) -> Deferred[T]:
        """Queue a write. Writes queued in the same reactor turn run in one transaction
        (group commit: one thread hand-off and one commit for the lot), each in its own
        savepoint, so one failing write leaves the others intact. Their Deferreds fire in
        queue order, after the commit."""
        d: Deferred[T] = Deferred()
        self._queue.append((f, d))
        if self._inline:
            self._dispatch()
        elif len(self._queue) == 1:
            self._reactor.callLater(0, self._dispatch)  # type: ignore[attr-defined]
        return d

    def _dispatch(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        done = self._run(self._commit_batch, [f for f, _ in batch])

        def deliver(results: list[tuple[bool, Any]]) -> None:
            for (_, d), (ok, value) in zip(batch, results):
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)

        def failed(failure: Any) -> None:
            for _, d in batch:
                d.errback(failure)

        done.addCallbacks(deliver, failed)

    def _commit_batch(self, writes: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        db = self._db()
        results: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                db.execute("SAVEPOINT write")
                try:
                    value = write()
                except Exception as e:
                    db.execute("ROLLBACK TO write")
                    db.execute("RELEASE write")
                    if isinstance(e, sqlite3.OperationalError):
                        e = StoreUnavailable(f"database error: {e}")
                    results.append((False, e))
                else:
                    db.execute("RELEASE write")
                    results.append((True, value))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the store is not open")
        return self._conn

    # -- boards ---------------------------------------------------------------------------

    def is_empty(self) -> Deferred[bool]:
        return self._run(
            lambda: self._db().execute("SELECT 1 FROM boards LIMIT 1").fetchone() is None
        )

    def create_board(
        self,
        board_id: str,
        name: str,
        order: str = "desc",
        operator: str = "incr",
        metadata: dict[str, Any] | None = None,
    ) -> Deferred[Board]:
        board = Board(board_id, name, order, operator, dict(metadata or {}))

        def create() -> Board:
            try:
                self._db().execute(
                    "INSERT INTO boards (id, name, sort_order, operator, metadata)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (board_id, name, order, operator, json.dumps(board.metadata)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"board {board_id!r} already exists") from None
            return board

        return self._write(create)

    def _board(self, board_id: str) -> Board:
        row = self._db().execute(
            "SELECT name, sort_order, operator, metadata FROM boards WHERE id = ?", (board_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no board {board_id!r}")
        return Board(board_id, row[0], row[1], row[2], json.loads(row[3]))

    def get_board(self, board_id: str) -> Deferred[Board]:
        return self._run(self._board, board_id)

    def list_boards(self, offset: int, limit: int) -> Deferred[list[BoardSummary]]:
        def list_() -> list[BoardSummary]:
            rows = self._db().execute(
                "SELECT b.id, b.name, (SELECT COUNT(*) FROM players p WHERE p.board = b.id)"
                " FROM boards b ORDER BY b.id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            return [BoardSummary(i, n, c) for i, n, c in rows]

        return self._run(list_)

    def board_view(self, board_id: str, limit: int) -> Deferred[BoardView]:
        def view() -> BoardView:
            db = self._db()
            db.execute("BEGIN")
            try:
                board = self._board(board_id)
                players = self._ranking(board, 0, limit)
            finally:
                db.execute("COMMIT")
            return BoardView(board, tuple(ranked_run(players, 1, 1)))

        return self._run(view)

    # -- players --------------------------------------------------------------------------

    def _ranking(self, board: Board, offset: int, limit: int) -> list[Player]:
        """Players ``offset`` .. ``offset + limit`` of the board's ranking, from its index."""
        direction = "DESC" if board.order == "desc" else "ASC"
        rows = self._db().execute(
            f"SELECT id, name, score FROM players WHERE board = ?"  # noqa: S608 - fixed words
            f" ORDER BY score {direction}, id ASC LIMIT ? OFFSET ?",
            (board.id, limit, offset),
        )
        return [Player(board.id, pid, name, score) for pid, name, score in rows]

    def _rank(self, board: Board, score: int) -> int:
        """1 + the number of players with a strictly better score."""
        better = ">" if board.order == "desc" else "<"
        row = self._db().execute(
            f"SELECT COUNT(*) FROM players WHERE board = ? AND score {better} ?",  # noqa: S608
            (board.id, score),
        ).fetchone()
        return int(row[0]) + 1

    def _position(self, board: Board, player: Player) -> int:
        """The player's 1-based place in the full ordering (ties broken by id)."""
        better = ">" if board.order == "desc" else "<"
        row = self._db().execute(
            f"SELECT COUNT(*) FROM players WHERE board = ? AND"  # noqa: S608
            f" (score {better} ? OR (score = ? AND id < ?))",
            (board.id, player.score, player.score, player.id),
        ).fetchone()
        return int(row[0]) + 1

    def _standings(self, board: Board, offset: int, limit: int) -> list[Standing]:
        players = self._ranking(board, offset, limit)
        if not players:
            return []
        return ranked_run(players, self._rank(board, players[0].score), offset + 1)

    def _player(self, board_id: str, player_id: str) -> Player:
        row = (
            self._db()
            .execute(
                "SELECT name, score FROM players WHERE board = ? AND id = ?", (board_id, player_id)
            )
            .fetchone()
        )
        if row is None:
            self._board(board_id)
            raise NotFound(f"no player {player_id!r} on board {board_id!r}")
        return Player(board_id, player_id, row[0], row[1])

    def create_player(self, board_id: str, player_id: str, name: str) -> Deferred[Player]:
        def create() -> tuple[Player, Change]:
            db = self._db()
            self._board(board_id)
            try:
                db.execute(
                    "INSERT INTO players (board, id, name, score) VALUES (?, ?, ?, 0)",
                    (board_id, player_id, name),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"player {player_id!r} already exists on board {board_id!r}"
                ) from None
            player = Player(board_id, player_id, name, 0)
            return player, Change(board_id, player_id, None, player)

        return self._write(create).addCallback(self._announce)

    def get_player(self, board_id: str, player_id: str) -> Deferred[Standing]:
        def get() -> Standing:
            db = self._db()
            db.execute("BEGIN")
            try:
                player = self._player(board_id, player_id)
                return Standing(player, self._rank(self._board(board_id), player.score))
            finally:
                db.execute("COMMIT")

        return self._run(get)

    def add_score(self, board_id: str, player_id: str, amount: int) -> Deferred[Standing]:
        def add() -> tuple[Standing, Change]:
            db = self._db()
            old = self._player(board_id, player_id)
            score = check_score(old.score + amount)
            db.execute(
                "UPDATE players SET score = ? WHERE board = ? AND id = ?",
                (score, board_id, player_id),
            )
            rank = self._rank(self._board(board_id), score)
            new = Player(board_id, player_id, old.name, score)
            return Standing(new, rank), Change(board_id, player_id, old, new)

        return self._write(add).addCallback(self._announce)

    def submit_score(
        self, board_id: str, player_id: str, score: int, name: str | None = None
    ) -> Deferred[Standing]:
        """Apply the board's operator to a submitted score; create the player first when it
        does not exist and ``name`` is given."""

        def submit() -> tuple[Standing, Change]:
            db = self._db()
            board = self._board(board_id)
            row = db.execute(
                "SELECT name, score FROM players WHERE board = ? AND id = ?",
                (board_id, player_id),
            ).fetchone()
            if row is None and name is None:
                raise NotFound(
                    f"no player {player_id!r} on board {board_id!r} (give a name to create it)"
                )
            old = None if row is None else Player(board_id, player_id, row[0], row[1])
            new_score = apply_operator(
                board.operator, board.order, None if old is None else old.score, score
            )
            new = Player(board_id, player_id, old.name if old else str(name), new_score)
            if old is None:
                db.execute(
                    "INSERT INTO players (board, id, name, score) VALUES (?, ?, ?, ?)",
                    (board_id, player_id, new.name, new_score),
                )
            elif new_score != old.score:
                db.execute(
                    "UPDATE players SET score = ? WHERE board = ? AND id = ?",
                    (new_score, board_id, player_id),
                )
            rank = self._rank(board, new_score)
            return Standing(new, rank), Change(board_id, player_id, old, new)

        return self._write(submit).addCallback(self._announce)

    def list_players(self, board_id: str, offset: int, limit: int) -> Deferred[list[Standing]]:
        def list_() -> list[Standing]:
            db = self._db()
            db.execute("BEGIN")
            try:
                return self._standings(self._board(board_id), offset, limit)
            finally:
                db.execute("COMMIT")

        return self._run(list_)

    def around(self, board_id: str, player_id: str, n: int) -> Deferred[list[Standing]]:
        """The player with up to ``n`` neighbours above and below, in rank order."""

        def around() -> list[Standing]:
            db = self._db()
            db.execute("BEGIN")
            try:
                board = self._board(board_id)
                player = self._player(board_id, player_id)
                position = self._position(board, player)
                start = max(0, position - 1 - n)
                return self._standings(board, start, position - 1 - start + n + 1)
            finally:
                db.execute("COMMIT")

        return self._run(around)

    def rename_player(self, board_id: str, player_id: str, name: str) -> Deferred[Standing]:
        def rename() -> tuple[Standing, Change]:
            db = self._db()
            old = self._player(board_id, player_id)
            db.execute(
                "UPDATE players SET name = ? WHERE board = ? AND id = ?",
                (name, board_id, player_id),
            )
            rank = self._rank(self._board(board_id), old.score)
            new = Player(board_id, player_id, name, old.score)
            return Standing(new, rank), Change(board_id, player_id, old, new)

        return self._write(rename).addCallback(self._announce)

    def delete_player(self, board_id: str, player_id: str) -> Deferred[None]:
        def delete() -> tuple[None, Change]:
            db = self._db()
            old = self._player(board_id, player_id)
            db.execute("DELETE FROM players WHERE board = ? AND id = ?", (board_id, player_id))
            return None, Change(board_id, player_id, old, None)

        return self._write(delete).addCallback(self._announce)

    def delete_board(self, board_id: str) -> Deferred[None]:
        """Delete a board and all its players (one change with no player: the board)."""

        def delete() -> tuple[None, Change]:
            db = self._db()
            self._board(board_id)
            db.execute("DELETE FROM players WHERE board = ?", (board_id,))
            db.execute("DELETE FROM boards WHERE id = ?", (board_id,))
            return None, Change(board_id)

        return self._write(delete).addCallback(self._announce)

    # -- changes --------------------------------------------------------------------------

    def _announce(self, result: tuple[T, Change]) -> T:
        value, change = result
        self._fanout.emit(change)
        return value

    def changes(self) -> ChangeStream:
        return self._fanout.subscribe()
