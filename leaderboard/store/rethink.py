# -*- test-case-name: tests.test_rethink_store -*-
"""The production store: RethinkDB through the official driver in Twisted mode.

Documents::

    boards:  {"id": "<board>", "name": ..., "order": "desc"|"asc", "operator": "incr"|"set"|"best",
              "metadata": "<JSON text>"}
    players: {"id": "<board>/<player>", "board": ..., "player": ..., "name": ..., "score": ...}

Player ids are per board, so a player's primary key joins both ids with ``/`` (ids are
``[A-Za-z0-9_-]``). Ranking reads only secondary indexes: ``rank`` on
``[board, 0 - score, player]`` for descending boards and ``rank_asc`` on
``[board, score, player]`` for ascending ones; read ascending, each is its board order's
ranking (best score first, then player id ascending). ``0 - score`` rather than
``score * -1`` so that a score of 0 indexes as +0, never -0. A page of a ranking is
``between`` + ``order_by(index)`` + ``skip``/``limit``; a rank is 1 + the ``count`` of the
index range strictly before ``[board, key(score)]``.

A board's options never change after it is created, so the store caches boards (while the
``boards`` changefeed is subscribed; it invalidates them: a board written or deleted by anyone
drops out of the cache at once).

Two long-lived connections: one for queries (the protocol multiplexes by token), one for the
``players`` and ``boards`` changefeeds. Each reconnects by itself with back-off; while one is
down, calls fail at once with L{StoreUnavailable}, and the change streams get L{RESYNC} once
the feed is back, so listeners re-read what they show.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections import OrderedDict
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
from leaderboard.model import (
    MAX_SCORE,
    OPERATORS,
    ORDERS,
    Board,
    BoardView,
    Player,
    Standing,
    ranked_run,
)
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
#: The ranking index of each board order; read ascending, it is that order's ranking.
RANK_INDEXES = {"desc": RANK_INDEX, "asc": "rank_asc"}
#: How long the start-up may wait for the indexes (building one over a big table takes time).
_INDEX_WAIT_TIMEOUT = 120.0
#: Players deleted per query when their board is deleted: each batch ends well within the
#: query timeout, however big the board.
_DELETE_BATCH = 1000
#: Boards whose options are kept in memory; the least recently used go first.
_BOARD_CACHE_SIZE = 10_000
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


def board_doc(board: Board) -> dict[str, Any]:
    """A board's stored document. The metadata is kept as JSON text: exactly what was given
    (no integer turned into a double, no ``$reql_type$`` key read as a ReQL pseudo-type)."""
    return {
        "id": board.id,
        "name": board.name,
        "order": board.order,
        "operator": board.operator,
        "metadata": json.dumps(board.metadata, ensure_ascii=False, separators=(",", ":")),
    }


def board_from_doc(doc: object) -> Board | None:
    """A L{Board} from a stored document, None for no document. Boards stored before boards
    had options (and documents written by hand) default to desc / incr / no metadata."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    board_id: str = doc["id"]
    name, order, operator = doc.get("name"), doc.get("order"), doc.get("operator")
    metadata = doc.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = None
    return Board(
        board_id,
        name if isinstance(name, str) else board_id,
        order if isinstance(order, str) and order in ORDERS else "desc",
        operator if isinstance(operator, str) and operator in OPERATORS else "incr",
        metadata if isinstance(metadata, dict) else {},
    )


def board_change_from_doc(doc: object) -> tuple[str | None, Change | None]:
    """From one ``boards`` changefeed document: the board written (its cached options are
    stale now), and the change to announce: only a deletion, as C{Change(board)}."""
    if not isinstance(doc, dict) or "state" in doc or doc.get("type") == "initial":
        return None, None
    old, new = doc.get("old_val"), doc.get("new_val")
    old_id = old.get("id") if isinstance(old, dict) else None
    new_id = new.get("id") if isinstance(new, dict) else None
    if isinstance(old_id, str) and new is None:
        return old_id, Change(old_id)
    if isinstance(new_id, str):
        return new_id, None
    return (old_id if isinstance(old_id, str) else None), None


def index_key(order: str, board_id: str, score: int, *player: str) -> list[Any]:
    """A player's key (or, without the player, its score's key) in the board order's index."""
    return [board_id, -score if order == "desc" else score, *player]


def _out_of_range() -> ScoreOutOfRange:
    return ScoreOutOfRange(f"the score would leave the range -{MAX_SCORE}..{MAX_SCORE}")


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

    Readiness: L{ready} is True while both connections are up and the changefeeds are
    subscribed; L{check} makes a round trip and fails with L{StoreUnavailable} otherwise.

    RethinkDB writes are atomic per document only. Every score change is one document
    write computed on the server (no lost update); a write that needs its board checks for
    it in the same query. Reads that take several queries (a page and its first rank) see
    each query's own moment.
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
        self._feed_cursors: tuple[Any, ...] = ()
        self._feed_subscribed = False
        self._resync_pending = False
        self._started = False
        #: Boards by id, valid while the boards changefeed is subscribed (it invalidates
        #: them); the generation makes a read that raced an invalidation not store its result.
        self._boards: OrderedDict[str, Board] = OrderedDict()
        self._boards_generation = 0
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
        """Both connections up and the changefeeds subscribed: for ``/readyz``."""
        return self._started and self._main.up and self._feed.up and self._feed_subscribed

    def check(self) -> Deferred[None]:
        """A round trip on the query connection; L{StoreUnavailable} unless all is well."""

        async def check() -> None:
            if not self.ready:
                raise StoreUnavailable("the database connection is not ready")
            await self._main.run(self._db.table(BOARDS).limit(1).count())

        return self._call(check)

    def start(self) -> Deferred[None]:
        """Connect, create the schema if needed, subscribe to the changefeeds.

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
        self._feed_cursors = ()
        self._forget()
        self._fanout.close_all()

        async def stop() -> None:
            await self._feed.stop()
            await self._main.stop()

        return self._call(stop)

    # -- schema ---------------------------------------------------------------------------

    @property
    def _db(self) -> Any:
        return self.r.db(self.settings.db)

    def _rank_indexes(self) -> dict[str, Any]:
        """The index functions by name: ``rank`` = ``[board, 0 - score, player]`` and
        ``rank_asc`` = ``[board, score, player]`` (lambdas: the driver reads their arity)."""
        r = self.r
        return {
            RANK_INDEXES["desc"]: lambda p: [p["board"], r.expr(0) - p["score"], p["player"]],
            RANK_INDEXES["asc"]: lambda p: [p["board"], p["score"], p["player"]],
        }

    async def _admin(self, link: Link, conn: Any, query: Any, what: str,
                     timeout: float | None = None) -> Any:
        """Run a schema query directly on ``conn``; another process winning a race is fine."""
        try:
            return await link.guard(conn, query.run(conn), timeout, what)
        except ReqlOpFailedError as e:
            if "already exists" in reql_message(e):
                return None
            raise

    async def ensure_schema(self, link: Link, conn: Any) -> None:
        """Create the database, tables and indexes if missing (idempotent, race-safe; an
        index added by a newer version is created on an existing database too), and wait
        until all are ready (after a server restart they are not, for a few seconds)."""
        r, name = self.r, self.settings.db

        async def admin(query: Any, what: str, timeout: float | None = None) -> Any:
            return await self._admin(link, conn, query, what, timeout)

        if name not in await admin(r.db_list(), "db_list"):
            await admin(r.db_create(name), "db_create")
        tables = await admin(self._db.table_list(), "table_list")
        for table in (BOARDS, PLAYERS):
            if table not in tables:
                await admin(self._db.table_create(table), "table_create")
        await admin(self._db.wait(), "wait")
        players = self._db.table(PLAYERS)
        have = await admin(players.index_list(), "index_list")
        for index, function in self._rank_indexes().items():
            if index not in have:
                await admin(players.index_create(index, function), "index_create")
        wait = players.index_wait(*RANK_INDEXES.values())
        await admin(wait, "index_wait", max(_INDEX_WAIT_TIMEOUT, link.query_timeout))

    async def _main_up(self, conn: Any) -> None:
        await self.ensure_schema(self._main, conn)

    def _connected(self) -> None:
        """A link came up: once both are, listeners that may have missed changes re-read."""
        if self._resync_pending and self._main.up and self._feed.up and self._feed_subscribed:
            self._resync_pending = False
            self.log.info("RethinkDB changefeed back; asking listeners to re-read")
            self._fanout.emit(RESYNC)

    # -- changefeeds ----------------------------------------------------------------------

    async def _feed_up(self, conn: Any) -> None:
        # After a server restart changes() fails for a few seconds unless the tables are ready.
        await self.ensure_schema(self._feed, conn)
        cursors = []
        for table in (PLAYERS, BOARDS):  # one connection: the protocol multiplexes them
            query = self._db.table(table).changes(include_types=True)
            cursors.append(await self._feed.guard(conn, query.run(conn), None, "changes"))
        players, boards = cursors
        self._feed_cursors = (players, boards)
        self._forget()  # boards read before the feed was there may have changed since
        self._feed_subscribed = True
        Deferred.fromCoroutine(self._read_feed(conn, players, change_from_doc))
        Deferred.fromCoroutine(self._read_feed(conn, boards, self._board_change))

    def _feed_down(self) -> None:
        self._feed_subscribed = False
        self._feed_cursors = ()
        self._forget()
        if self._started:
            self._resync_pending = True

    def _board_change(self, doc: object) -> Change | None:
        board_id, change = board_change_from_doc(doc)
        if board_id is not None:
            self._forget(board_id)
        return change

    async def _read_feed(self, conn: Any, cursor: Any,
                         parse: Callable[[object], Change | None]) -> None:
        while True:
            try:
                doc = await cursor.next()
            except BaseException as e:
                if cursor in self._feed_cursors:
                    self._feed_subscribed = False
                    self._feed_cursors = ()
                    self._forget()
                    self._feed.lost(conn, f"the changefeed ended: {reql_message(e)}")
                return
            change = parse(doc)
            if change is not None:
                self._fanout.emit(change)

    def changes(self) -> ChangeStream:
        return self._fanout.subscribe()

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, f: Callable[[], Coroutine[Any, Any, T]]) -> Deferred[T]:
        return Deferred.fromCoroutine(f())

    async def _rows(self, query: Any) -> list[Any]:
        cursor = await self._main.run(query)
        if isinstance(cursor, list):
            return cursor
        conn = self._main.conn
        return await self._main.guard(conn, Deferred.fromCoroutine(read_all(cursor)), None, "rows")

    def _raise_write_error(self, result: dict[str, Any], duplicate: str) -> None:
        first = str(result.get("first_error", ""))
        if _OUT_OF_RANGE in first:
            raise _out_of_range()
        if duplicate and first.startswith("Duplicate primary key"):
            raise AlreadyExists(duplicate)
        line = first.splitlines()[0] if first else "unknown error"
        raise StoreUnavailable(f"the database refused the write: {line}")

    async def _write(self, query: Any, duplicate: str = "") -> Any:
        """Run a write; its refusals as typed errors (an out-of-range score, a duplicate)."""
        try:
            result = await self._main.run(query)
        except ReqlRuntimeError as e:  # how a server may report r.error() inside a write
            if _OUT_OF_RANGE in reql_message(e):
                raise _out_of_range() from None
            raise
        if isinstance(result, dict) and result.get("errors"):
            self._raise_write_error(result, duplicate)
        return result

    # -- boards ---------------------------------------------------------------------------

    def _forget(self, board_id: str | None = None) -> None:
        """Drop a cached board (all of them without an id)."""
        self._boards_generation += 1
        if board_id is None:
            self._boards.clear()
        else:
            self._boards.pop(board_id, None)

    async def _read_board(self, board_id: str) -> Board:
        board = board_from_doc(await self._main.run(self._db.table(BOARDS).get(board_id)))
        if board is None:
            self._forget(board_id)
            raise NotFound(f"no board {board_id!r}")
        return board

    async def _board(self, board_id: str) -> Board:
        """The board and its options; from the cache while the boards feed keeps it valid
        (options never change after creation; a deletion anywhere invalidates it)."""
        if self._feed_subscribed:
            cached = self._boards.get(board_id)
            if cached is not None:
                self._boards.move_to_end(board_id)
                return cached
        generation = self._boards_generation
        board = await self._read_board(board_id)
        if generation == self._boards_generation and self._feed_subscribed:
            self._boards[board_id] = board
            if len(self._boards) > _BOARD_CACHE_SIZE:
                self._boards.popitem(last=False)
        return board

    @staticmethod
    def _public(board: Board) -> Board:
        """A copy for callers: the cached board's metadata stays untouched."""
        return dataclasses.replace(board, metadata=copy.deepcopy(board.metadata))

    def is_empty(self) -> Deferred[bool]:
        async def is_empty() -> bool:
            return int(await self._main.run(self._db.table(BOARDS).limit(1).count())) == 0

        return self._call(is_empty)

    def create_board(
        self,
        board_id: str,
        name: str,
        order: str = "desc",
        operator: str = "incr",
        metadata: dict[str, Any] | None = None,
    ) -> Deferred[Board]:
        board = Board(board_id, name, order, operator, dict(metadata or {}))

        async def create() -> Board:
            insert = self._db.table(BOARDS).insert(board_doc(board))
            await self._write(insert, f"board {board_id!r} already exists")
            return board

        return self._call(create)

    def get_board(self, board_id: str) -> Deferred[Board]:
        async def get() -> Board:
            return self._public(await self._board(board_id))

        return self._call(get)

    def delete_board(self, board_id: str) -> Deferred[None]:
        """Delete the board, then its players in batches. The players go even when the
        board is already gone: a retry cleans up after an interrupted delete."""

        async def delete() -> None:
            self._forget(board_id)
            try:
                result = await self._write(self._db.table(BOARDS).get(board_id).delete())
            finally:
                self._forget(board_id)  # a read that overlapped the delete must not cache
            batch = self._players_of(board_id).limit(_DELETE_BATCH).delete()
            deleted = _DELETE_BATCH
            while deleted >= _DELETE_BATCH:
                deleted = int((await self._write(batch)).get("deleted", 0))
            if not result.get("deleted"):
                raise NotFound(f"no board {board_id!r}")

        return self._call(delete)

    def _players_of(self, board_id: str, index: str = RANK_INDEX) -> Any:
        r = self.r
        return self._db.table(PLAYERS).between(
            [board_id, r.minval], [board_id, r.maxval], index=index
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
            board = await self._board(board_id)
            players = await self._page(board, 0, limit)
            return BoardView(self._public(board), tuple(ranked_run(players, 1, 1)))

        return self._call(view)

    # -- rankings -------------------------------------------------------------------------

    @staticmethod
    def _index(board: Board) -> str:
        return RANK_INDEXES.get(board.order, RANK_INDEX)

    async def _page(self, board: Board, offset: int, limit: int) -> list[Player]:
        """Players ``offset`` .. ``offset + limit`` of the board's ranking, from its index."""
        index = self._index(board)
        query = self._players_of(board.id, index).order_by(index=self.r.asc(index))
        if offset:
            query = query.skip(offset)
        docs = await self._rows(query.limit(limit))
        return [p for p in map(player_from_doc, docs) if p is not None]

    def _before(self, board: Board, score: int, *player: str) -> Any:
        """The players strictly before a score (or a player) in the board's ranking."""
        return self._db.table(PLAYERS).between(
            [board.id, self.r.minval], index_key(board.order, board.id, score, *player),
            index=self._index(board),
        )

    async def _rank(self, board: Board, score: int) -> int:
        """1 + the number of players with a strictly better score (competition rank)."""
        return int(await self._main.run(self._before(board, score).count())) + 1

    async def _standings(self, board: Board, offset: int, limit: int) -> list[Standing]:
        players = await self._page(board, offset, limit)
        if not players:
            return []
        return ranked_run(players, await self._rank(board, players[0].score), offset + 1)

    def list_players(self, board_id: str, offset: int, limit: int) -> Deferred[list[Standing]]:
        async def list_() -> list[Standing]:
            return await self._standings(await self._board(board_id), offset, limit)

        return self._call(list_)

    def around(self, board_id: str, player_id: str, n: int) -> Deferred[list[Standing]]:
        """The player with up to ``n`` neighbours above and below: two index ranges read
        outwards from its key, so the cost does not grow with its position."""

        async def around() -> list[Standing]:
            r = self.r
            board = await self._board(board_id)
            me = await self._player(board_id, player_id)
            index = self._index(board)
            key = index_key(board.order, board_id, me.score, player_id)
            before = self._before(board, me.score, player_id)
            after = self._db.table(PLAYERS).between(key, [board_id, r.maxval], index=index)
            above, below, position = await gather(
                self._call(lambda: self._rows(before.order_by(index=r.desc(index)).limit(n))),
                self._call(lambda: self._rows(after.order_by(index=r.asc(index)).limit(n + 1))),
                self._main.run(before.count()),
            )
            upper = [p for p in map(player_from_doc, reversed(above)) if p is not None]
            lower = [p for p in map(player_from_doc, below) if p is not None]
            run = upper + lower
            if not run:
                return []
            first_rank = await self._rank(board, run[0].score)
            return ranked_run(run, first_rank, int(position) + 1 - len(upper))

        return self._call(around)

    # -- players --------------------------------------------------------------------------

    async def _missing_player(self, board_id: str, player_id: str, hint: str = "") -> NotFound:
        await self._read_board(board_id)
        return NotFound(f"no player {player_id!r} on board {board_id!r}{hint}")

    async def _player(self, board_id: str, player_id: str) -> Player:
        doc = await self._main.run(self._db.table(PLAYERS).get(player_key(board_id, player_id)))
        player = player_from_doc(doc)
        if player is None:
            raise await self._missing_player(board_id, player_id)
        return player

    async def _standing(self, board: Board, player_id: str) -> Standing:
        player = await self._player(board.id, player_id)
        return Standing(player, await self._rank(board, player.score))

    async def _written(self, board: Board, player_id: str, result: Any,
                       hint: str = "") -> Standing:
        """The standing after a one-player write with ``return_changes``."""
        changes = result.get("changes") or []
        player = player_from_doc(changes[-1].get("new_val")) if changes else None
        if player is None:
            if result.get("skipped"):
                raise await self._missing_player(board.id, player_id, hint)
            return await self._standing(board, player_id)  # unchanged: nothing comes back
        return Standing(player, await self._rank(board, player.score))

    def create_player(self, board_id: str, player_id: str, name: str) -> Deferred[Player]:
        async def create() -> Player:
            doc = {"id": player_key(board_id, player_id), "board": board_id,
                   "player": player_id, "name": name, "score": 0}
            insert = self._db.table(PLAYERS).insert(doc)
            # The board is checked in the same query as the insert.
            query = self.r.branch(self._db.table(BOARDS).get(board_id), insert, None)
            result = await self._write(
                query, f"player {player_id!r} already exists on board {board_id!r}"
            )
            if result is None:
                self._forget(board_id)
                raise NotFound(f"no board {board_id!r}")
            return Player(board_id, player_id, name, 0)

        return self._call(create)

    def get_player(self, board_id: str, player_id: str) -> Deferred[Standing]:
        async def get() -> Standing:
            return await self._standing(await self._board(board_id), player_id)

        return self._call(get)

    def _in_range(self, score: Any, then: Any) -> Any:
        """``then``, or an error (nothing is written) when ``score`` leaves +-MAX_SCORE."""
        r = self.r
        score = r.expr(score)
        return r.branch((score > MAX_SCORE) | (score < -MAX_SCORE), r.error(_OUT_OF_RANGE), then)

    def _combined(self, board: Board, stored: Any, submitted: int) -> Any:
        """L{leaderboard.model.apply_operator} in ReQL, for a stored score (a term)."""
        r = self.r
        if board.operator == "set":
            return r.expr(submitted)
        if board.operator == "best":
            keep = stored >= submitted if board.order == "desc" else stored <= submitted
            return r.branch(keep, stored, submitted)
        return stored + submitted

    def add_score(self, board_id: str, player_id: str, amount: int) -> Deferred[Standing]:
        async def add() -> Standing:
            board = await self._board(board_id)
            if amount == 0:  # an update that changes nothing returns no document
                return await self._standing(board, player_id)

            def bump(p: Any) -> Any:
                score = p["score"] + amount
                return self._in_range(score, {"score": score})

            query = self._db.table(PLAYERS).get(player_key(board_id, player_id)).update(
                bump, return_changes=True
            )
            return await self._written(board, player_id, await self._write(query))

        return self._call(add)

    def submit_score(
        self, board_id: str, player_id: str, score: int, name: str | None = None
    ) -> Deferred[Standing]:
        """Apply the board's operator on the server, in one document write: an update, or
        with ``name`` an insert whose conflict function updates an existing player."""

        async def submit() -> Standing:
            board = await self._board(board_id)
            if abs(score) > MAX_SCORE:
                raise _out_of_range()
            players = self._db.table(PLAYERS)
            key = player_key(board_id, player_id)
            if name is None:

                def apply(p: Any) -> Any:
                    new = self._combined(board, p["score"], score)
                    return self._in_range(new, {"score": new})

                result = await self._write(players.get(key).update(apply, return_changes=True))
                hint = " (give a name to create it)"
                return await self._written(board, player_id, result, hint)

            def resolve(_key: Any, old: Any, _new: Any) -> Any:
                new = self._combined(board, old["score"], score)
                return self._in_range(new, old.merge({"score": new}))

            doc = {"id": key, "board": board_id, "player": player_id, "name": name,
                   "score": score}
            upsert = players.insert(doc, conflict=resolve, return_changes=True)
            # The board is checked in the same query as the write.
            result = await self._write(
                self.r.branch(self._db.table(BOARDS).get(board_id), upsert, None)
            )
            if result is None:
                self._forget(board_id)
                raise NotFound(f"no board {board_id!r}")
            return await self._written(board, player_id, result)

        return self._call(submit)

    def rename_player(self, board_id: str, player_id: str, name: str) -> Deferred[Standing]:
        async def rename() -> Standing:
            board = await self._board(board_id)
            query = self._db.table(PLAYERS).get(player_key(board_id, player_id)).update(
                {"name": name}, return_changes=True
            )
            return await self._written(board, player_id, await self._write(query))

        return self._call(rename)

    def delete_player(self, board_id: str, player_id: str) -> Deferred[None]:
        async def delete() -> None:
            await self._board(board_id)
            query = self._db.table(PLAYERS).get(player_key(board_id, player_id)).delete()
            if not (await self._write(query)).get("deleted"):
                raise await self._missing_player(board_id, player_id)

        return self._call(delete)
