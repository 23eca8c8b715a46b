# -*- test-case-name: tests.test_rethink_store -*-
"""The production store: RethinkDB through the official driver in Twisted mode.

Documents::

    boards:  {"id": "<board>", "name": ...}
    players: {"id": "<board>/<player>", "board": ..., "player": ..., "name": ..., "score": ...}

Player ids are per board, so a player's primary key joins both ids with ``/`` (ids are
``[A-Za-z0-9_-]``). Ranking reads only the secondary index ``rank`` on
``[board, 0 - score, player]``: read ascending it is the documented order (score
descending, then player id ascending); ``0 - score`` rather than ``score * -1`` so that a
score of 0 indexes as +0, never -0. A board's top N is ``between`` + ``order_by(index)`` +
``limit``; a rank is 1 + the ``count`` of the index range strictly before ``[board, -score]``.

Two long-lived connections: one for queries (the protocol multiplexes by token), one for the
``players`` changefeed. Each reconnects by itself with back-off; while one is down, calls
fail at once with L{StoreUnavailable}, and the change streams get L{RESYNC} once the feed is
back, so listeners re-read what they show.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from rethinkdb import RethinkDB  # type: ignore[import-untyped]
from rethinkdb.errors import (  # type: ignore[import-untyped]
    ReqlCursorEmpty,
    ReqlOpFailedError,
    ReqlRuntimeError,
)
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from leaderboard.errors import AlreadyExists, NotFound, ScoreOutOfRange, StoreUnavailable
from leaderboard.model import MAX_SCORE, Board, BoardView, Player, Standing
from leaderboard.store._base import RESYNC, BoardSummary, Change, ChangeFanout, ChangeStream
from leaderboard.store._rethink_link import (
    Backoff,
    Link,
    quiet_driver_warnings,
    reql_message,
)

__all__ = ["RethinkSettings", "RethinkStore", "parse_rethink_url"]

T = TypeVar("T")

DEFAULT_PORT = 28015
DEFAULT_USER = "admin"
BOARDS = "boards"
PLAYERS = "players"
RANK_INDEX = "rank"
#: The error an out-of-range score-add raises inside the update, so nothing is written.
_OUT_OF_RANGE = "leaderboard: score out of range"
#: RethinkDB's limit on a primary key's length.
_MAX_KEY = 127
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class RethinkSettings:
    """Where the RethinkDB store connects; the password never appears in a repr."""

    host: str
    port: int = DEFAULT_PORT
    db: str = "leaderboard"
    user: str = DEFAULT_USER
    password: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        """For log lines: ``user@host:port/db``, without the password."""
        return f"{self.user}@{self.host}:{self.port}/{self.db}"


def parse_rethink_url(url: str) -> RethinkSettings:
    """Parse ``rethinkdb://[user[:password]@]host[:port]/db``; ValueError with a clear reason."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ValueError(f"invalid DATABASE_URL: {e}") from None
    shown = _redact(url)
    if parts.scheme.lower() != "rethinkdb":
        raise ValueError(
            f"DATABASE_URL {shown!r} is not a RethinkDB URL: expected "
            "rethinkdb://[user[:password]@]host[:port]/db"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"DATABASE_URL {shown!r}: a RethinkDB URL takes no query or fragment")
    host = parts.hostname
    if not host:
        raise ValueError(f"DATABASE_URL {shown!r} has no host: expected rethinkdb://host[:port]/db")
    if ":" in host:
        raise ValueError(
            f"DATABASE_URL {shown!r}: IPv6 literal hosts are not supported by the RethinkDB "
            "driver; use a host name"
        )
    bad_port = f"DATABASE_URL {shown!r}: the port must be a number from 1 to 65535"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(bad_port) from None
    if port == 0:
        raise ValueError(bad_port)
    db = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not _NAME.match(db):
        raise ValueError(
            f"DATABASE_URL {shown!r}: the path must be one database name of A-Z, a-z, 0-9, "
            "'_' or '-' (rethinkdb://host:port/db)"
        )
    user = unquote(parts.username) if parts.username else DEFAULT_USER
    password = unquote(parts.password) if parts.password else ""
    return RethinkSettings(host, port or DEFAULT_PORT, db, user, password)


def _redact(url: str) -> str:
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def player_key(board_id: str, player_id: str) -> str:
    """A player's primary key: ``board/player``, unique per board.

    RethinkDB refuses primary keys over 127 characters and two 64-character ids make 129,
    so a key that would be too long keeps a prefix of the player id and adds a digest of
    it after ``~``, a character no id contains (so it cannot equal a plain key).
    """
    key = f"{board_id}/{player_id}"
    if len(key) <= _MAX_KEY:
        return key
    digest = hashlib.sha256(player_id.encode("utf-8")).hexdigest()[:24]
    return f"{board_id}/{player_id[:36]}~{digest}"


def player_from_doc(doc: object) -> Player | None:
    """A L{Player} from a stored document, or None for a document that is not a player."""
    if not isinstance(doc, dict):
        return None
    board, pid = doc.get("board"), doc.get("player")
    key = doc.get("id")
    plain = isinstance(key, str) and key.count("/") == 1 and "~" not in key
    if (board is None or pid is None) and plain:
        board, pid = key.split("/")  # type: ignore[union-attr]
    name, score = doc.get("name"), doc.get("score")
    if not (isinstance(board, str) and isinstance(pid, str) and isinstance(name, str)):
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    if isinstance(score, float):
        if not score.is_integer():
            return None
        score = int(score)
    return Player(board, pid, name, score)


def change_from_doc(doc: object) -> Change | None:
    """A L{Change} from one changefeed document; None for states, initial values and noise."""
    if not isinstance(doc, dict) or "state" in doc or doc.get("type") == "initial":
        return None
    if "old_val" not in doc and "new_val" not in doc:
        return None
    old, new = player_from_doc(doc.get("old_val")), player_from_doc(doc.get("new_val"))
    either = new or old
    if either is None:
        return None
    return Change(either.board, either.id, old, new)


def ranked(players: list[Player]) -> tuple[Standing, ...]:
    """Competition ranks for the first players of a board, already in rank order."""
    out: list[Standing] = []
    for i, p in enumerate(players):
        same = out and out[-1].player.score == p.score
        out.append(Standing(p, out[-1].rank if same else i + 1))
    return tuple(out)


async def gather(*ds: Deferred[Any]) -> list[Any]:
    """The results of Deferreds already running; the first failure is raised, none leaks."""
    results: list[Any] = []
    first: BaseException | None = None
    for d in ds:
        try:
            results.append(await d)
        except BaseException as e:
            first = first or e
    if first is not None:
        raise first
    return results


async def read_all(cursor: Any) -> list[Any]:
    """Every item of a driver cursor (one SUCCESS_SEQUENCE, or partials and CONTINUEs)."""
    items: list[Any] = []
    while True:
        try:
            items.append(await cursor.next())
        except ReqlCursorEmpty:
            return items


class RethinkStore:
    """A L{leaderboard.store.Store} on RethinkDB 2.4.

    ``clock`` runs every timer of the store (timeouts, back-off, heartbeats); the driver's
    sockets always use the global reactor (the driver cannot be given another one).

    Readiness: L{ready} is True while both connections are up and the changefeed is
    subscribed; L{check} makes a round trip and fails with L{StoreUnavailable} otherwise.
    """

    log = Logger()

    def __init__(
        self,
        settings: RethinkSettings,
        clock: IReactorTime,
        *,
        connect_timeout: float = 5.0,
        query_timeout: float = 10.0,
        heartbeat: float | None = 15.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        quiet_driver_warnings()
        self.settings = settings
        self._clock = clock
        self.r = RethinkDB()
        self._fanout = ChangeFanout()
        self._feed_cursor: Any = None
        self._feed_subscribed = False
        self._resync_pending = False
        self._started = False
        connect = {
            "host": settings.host,
            "port": settings.port,
            "db": settings.db,
            "user": settings.user,
            "password": settings.password,
        }
        options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "query_timeout": query_timeout,
            "heartbeat": heartbeat,
            "describe": settings.where,
        }
        self._main = Link(
            "query", connect, clock, on_up=self._main_up, on_connected=self._connected,
            backoff=Backoff(backoff_initial, backoff_max), **options,
        )
        self._feed = Link(
            "changefeed", connect, clock, on_up=self._feed_up, on_down=self._feed_down,
            on_connected=self._connected,
            backoff=Backoff(backoff_initial, backoff_max), **options,
        )

    @classmethod
    def from_url(cls, url: str, clock: IReactorTime, **options: Any) -> RethinkStore:
        return cls(parse_rethink_url(url), clock, **options)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Both connections up and the changefeed subscribed: for ``/readyz``."""
        return self._started and self._main.up and self._feed.up and self._feed_subscribed

    def check(self) -> Deferred[None]:
        """A round trip on the query connection; L{StoreUnavailable} unless all is well."""

        async def check() -> None:
            if not self.ready:
                raise StoreUnavailable("the database connection is not ready")
            await self._main.run(self._db.table(BOARDS).limit(1).count())

        return self._call(check)

    def start(self) -> Deferred[None]:
        """Connect, create the schema if needed, subscribe to the changefeed.

        Fails with L{StoreUnavailable} if the database cannot be reached now; may be called
        again after a failure. Once started, the store reconnects by itself.
        """

        async def start() -> None:
            if self._started:
                return
            self._resync_pending = False
            try:
                await self._main.open()
                await self._feed.open()
            except BaseException:
                await self._main.stop()
                await self._feed.stop()
                raise
            self._started = True
            self.log.info("RethinkDB store ready at {where}", where=self.settings.where)

        return self._call(start)

    def stop(self) -> Deferred[None]:
        self._started = False
        self._feed_cursor = None
        self._fanout.close_all()

        async def stop() -> None:
            await self._feed.stop()
            await self._main.stop()

        return self._call(stop)

    # -- schema ---------------------------------------------------------------------------

    @property
    def _db(self) -> Any:
        return self.r.db(self.settings.db)

    def _rank_index(self) -> Any:
        """``[board, 0 - score, player]``: the driver reads a lambda's arity, so not a method."""
        r = self.r
        return lambda p: [p["board"], r.expr(0) - p["score"], p["player"]]

    async def _admin(self, link: Link, conn: Any, query: Any, what: str) -> Any:
        """Run a schema query directly on ``conn``; another process winning a race is fine."""
        try:
            return await link.guard(conn, query.run(conn), None, what)
        except ReqlOpFailedError as e:
            if "already exists" in reql_message(e):
                return None
            raise

    async def ensure_schema(self, link: Link, conn: Any) -> None:
        """Create the database, tables and index if missing (idempotent, race-safe), and
        wait until all are ready (after a server restart they are not, for a few seconds)."""
        r, name = self.r, self.settings.db

        async def admin(query: Any, what: str) -> Any:
            return await self._admin(link, conn, query, what)

        if name not in await admin(r.db_list(), "db_list"):
            await admin(r.db_create(name), "db_create")
        tables = await admin(self._db.table_list(), "table_list")
        for table in (BOARDS, PLAYERS):
            if table not in tables:
                await admin(self._db.table_create(table), "table_create")
        await admin(self._db.wait(), "wait")
        players = self._db.table(PLAYERS)
        if RANK_INDEX not in await admin(players.index_list(), "index_list"):
            await admin(players.index_create(RANK_INDEX, self._rank_index()), "index_create")
        await admin(players.index_wait(RANK_INDEX), "index_wait")

    async def _main_up(self, conn: Any) -> None:
        await self.ensure_schema(self._main, conn)

    def _connected(self) -> None:
        """A link came up: once both are, listeners that may have missed changes re-read."""
        if self._resync_pending and self._main.up and self._feed.up and self._feed_subscribed:
            self._resync_pending = False
            self.log.info("RethinkDB changefeed back; asking listeners to re-read")
            self._fanout.emit(RESYNC)

    # -- changefeed -----------------------------------------------------------------------

    async def _feed_up(self, conn: Any) -> None:
        # After a server restart changes() fails for a few seconds unless the tables are ready.
        await self.ensure_schema(self._feed, conn)
        query = self._db.table(PLAYERS).changes(include_types=True)
        cursor = await self._feed.guard(conn, query.run(conn), None, "changes")
        self._feed_cursor = cursor
        self._feed_subscribed = True
        Deferred.fromCoroutine(self._read_feed(conn, cursor))

    def _feed_down(self) -> None:
        self._feed_subscribed = False
        self._feed_cursor = None
        if self._started:
            self._resync_pending = True

    async def _read_feed(self, conn: Any, cursor: Any) -> None:
        while True:
            try:
                doc = await cursor.next()
            except BaseException as e:
                if cursor is self._feed_cursor:
                    self._feed_subscribed = False
                    self._feed.lost(conn, f"the changefeed ended: {reql_message(e)}")
                return
            change = change_from_doc(doc)
            if change is not None:
                self._fanout.emit(change)

    def changes(self) -> ChangeStream:
        return self._fanout.subscribe()

    # -- boards ---------------------------------------------------------------------------

    def _call(self, f: Callable[[], Coroutine[Any, Any, T]]) -> Deferred[T]:
        return Deferred.fromCoroutine(f())

    async def _rows(self, query: Any) -> list[Any]:
        cursor = await self._main.run(query)
        if isinstance(cursor, list):
            return cursor
        conn = self._main.conn
        return await self._main.guard(conn, Deferred.fromCoroutine(read_all(cursor)), None, "rows")

    async def _board(self, board_id: str) -> Board:
        doc = await self._main.run(self._db.table(BOARDS).get(board_id))
        if doc is None:
            raise NotFound(f"no board {board_id!r}")
        return Board(board_id, doc.get("name", board_id))

    def is_empty(self) -> Deferred[bool]:
        async def is_empty() -> bool:
            return int(await self._main.run(self._db.table(BOARDS).limit(1).count())) == 0

        return self._call(is_empty)

    def create_board(self, board_id: str, name: str) -> Deferred[Board]:
        async def create() -> Board:
            doc = {"id": board_id, "name": name}
            result = await self._main.run(self._db.table(BOARDS).insert(doc))
            if result.get("errors"):
                self._raise_write_error(result, f"board {board_id!r} already exists")
            return Board(board_id, name)

        return self._call(create)

    def get_board(self, board_id: str) -> Deferred[Board]:
        return self._call(lambda: self._board(board_id))

    def _players_of(self, board_id: str) -> Any:
        r = self.r
        return self._db.table(PLAYERS).between(
            [board_id, r.minval], [board_id, r.maxval], index=RANK_INDEX
        )

    def list_boards(self, offset: int, limit: int) -> Deferred[list[BoardSummary]]:
        async def list_() -> list[BoardSummary]:
            boards = self._db.table(BOARDS).order_by(index=self.r.asc("id"))
            docs = await self._rows(boards.skip(offset).limit(limit))
            counts = await gather(
                *(self._main.run(self._players_of(doc["id"]).count()) for doc in docs)
            )
            return [
                BoardSummary(doc["id"], doc.get("name", doc["id"]), int(n))
                for doc, n in zip(docs, counts, strict=True)
            ]

        return self._call(list_)

    def board_view(self, board_id: str, limit: int) -> Deferred[BoardView]:
        async def view() -> BoardView:
            top = self._players_of(board_id).order_by(index=self.r.asc(RANK_INDEX)).limit(limit)
            board, docs = await gather(self._call(lambda: self._board(board_id)),
                                       self._call(lambda: self._rows(top)))
            players = [p for p in map(player_from_doc, docs) if p is not None]
            return BoardView(board, ranked(players))

        return self._call(view)

    # -- players --------------------------------------------------------------------------

    async def _rank(self, board_id: str, score: int) -> int:
        r = self.r
        higher = self._db.table(PLAYERS).between(
            [board_id, r.minval], [board_id, -score], index=RANK_INDEX
        ).count()
        return int(await self._main.run(higher)) + 1

    async def _missing_player(self, board_id: str, player_id: str) -> NotFound:
        await self._board(board_id)
        return NotFound(f"no player {player_id!r} on board {board_id!r}")

    def create_player(self, board_id: str, player_id: str, name: str) -> Deferred[Player]:
        async def create() -> Player:
            await self._board(board_id)
            doc = {"id": player_key(board_id, player_id), "board": board_id,
                   "player": player_id, "name": name, "score": 0}
            result = await self._main.run(self._db.table(PLAYERS).insert(doc))
            if result.get("errors"):
                self._raise_write_error(
                    result, f"player {player_id!r} already exists on board {board_id!r}"
                )
            return Player(board_id, player_id, name, 0)

        return self._call(create)

    async def _standing(self, board_id: str, player_id: str) -> Standing:
        doc = await self._main.run(self._db.table(PLAYERS).get(player_key(board_id, player_id)))
        player = player_from_doc(doc)
        if player is None:
            raise await self._missing_player(board_id, player_id)
        return Standing(player, await self._rank(board_id, player.score))

    def get_player(self, board_id: str, player_id: str) -> Deferred[Standing]:
        return self._call(lambda: self._standing(board_id, player_id))

    def add_score(self, board_id: str, player_id: str, amount: int) -> Deferred[Standing]:
        async def add() -> Standing:
            if amount == 0:  # an update that changes nothing returns no document
                return await self._standing(board_id, player_id)
            r = self.r

            def bump(p: Any) -> Any:
                score = p["score"] + amount
                return r.branch(
                    (score > MAX_SCORE) | (score < -MAX_SCORE),
                    r.error(_OUT_OF_RANGE),
                    {"score": score},
                )

            query = self._db.table(PLAYERS).get(player_key(board_id, player_id)).update(
                bump, return_changes=True
            )
            try:
                result = await self._main.run(query)
            except ReqlRuntimeError as e:  # how a server may report r.error() in an update
                if _OUT_OF_RANGE in reql_message(e):
                    raise ScoreOutOfRange(
                        f"the score would leave the range -{MAX_SCORE}..{MAX_SCORE}"
                    ) from None
                raise
            if result.get("errors"):
                if _OUT_OF_RANGE in str(result.get("first_error", "")):
                    raise ScoreOutOfRange(
                        f"the score would leave the range -{MAX_SCORE}..{MAX_SCORE}"
                    )
                self._raise_write_error(result, "")
            changes = result.get("changes") or []
            player = player_from_doc(changes[0].get("new_val")) if changes else None
            if player is None:
                if result.get("skipped"):
                    raise await self._missing_player(board_id, player_id)
                return await self._standing(board_id, player_id)
            return Standing(player, await self._rank(board_id, player.score))

        return self._call(add)

    def _raise_write_error(self, result: dict[str, Any], duplicate: str) -> None:
        first = str(result.get("first_error", ""))
        if duplicate and first.startswith("Duplicate primary key"):
            raise AlreadyExists(duplicate)
        line = first.splitlines()[0] if first else "unknown error"
        raise StoreUnavailable(f"the database refused the write: {line}")
