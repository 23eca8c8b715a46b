# -*- test-case-name: tests.test_store -*-
"""The Store interface every backend implements, and the change values it streams."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail, succeed

from leaderboard.model import Board, BoardView, Player, Standing


@dataclass(frozen=True)
class Change:
    """One committed write to a player row, or a resync marker.

    ``board`` is None for a resync: the stream may have missed changes (a changefeed
    reconnected), so every board a consumer cares about must be re-read.
    """

    board: str | None
    player: str | None = None
    old: Player | None = None
    new: Player | None = None


RESYNC = Change(board=None)


@dataclass(frozen=True)
class BoardSummary:
    id: str
    name: str
    players: int


class ChangeStream(Protocol):
    def next(self) -> Deferred[Change]:
        """The next change; waits until there is one. Cancelling the wait is safe."""

    def close(self) -> None:
        """Stop receiving; a pending L{next} fails with L{CancelledError}."""


class Store(Protocol):
    """Persistence for boards and players. Every method returns a Deferred.

    Errors are typed: L{leaderboard.errors.NotFound}, L{AlreadyExists},
    L{InvalidInput}/L{ScoreOutOfRange}, and L{StoreUnavailable} when the database
    cannot be reached.
    """

    def start(self) -> Deferred[None]:
        """Connect and create the schema (idempotent)."""

    def stop(self) -> Deferred[None]:
        """Close connections; pending change streams end."""

    def is_empty(self) -> Deferred[bool]:
        """True when no board exists (used to seed the demo board)."""

    def create_board(
        self,
        board_id: str,
        name: str,
        order: str = "desc",
        operator: str = "incr",
        metadata: dict[str, Any] | None = None,
    ) -> Deferred[Board]:
        """A new board; ``order`` (desc/asc) and ``operator`` (incr/set/best) are fixed."""

    def get_board(self, board_id: str) -> Deferred[Board]: ...

    def list_boards(self, offset: int, limit: int) -> Deferred[list[BoardSummary]]:
        """Boards by id, with their player counts."""

    def delete_board(self, board_id: str) -> Deferred[None]:
        """Delete a board and its players; announced as a L{Change} with no player."""

    def create_player(self, board_id: str, player_id: str, name: str) -> Deferred[Player]: ...

    def get_player(self, board_id: str, player_id: str) -> Deferred[Standing]: ...

    def add_score(self, board_id: str, player_id: str, amount: int) -> Deferred[Standing]:
        """Atomically add ``amount``; the result carries the new score and rank."""

    def submit_score(
        self, board_id: str, player_id: str, score: int, name: str | None = None
    ) -> Deferred[Standing]:
        """Apply the board's operator (see L{leaderboard.model.apply_operator}) atomically,
        creating the player when it is missing and ``name`` is given."""

    def rename_player(self, board_id: str, player_id: str, name: str) -> Deferred[Standing]: ...

    def delete_player(self, board_id: str, player_id: str) -> Deferred[None]: ...

    def board_view(self, board_id: str, limit: int) -> Deferred[BoardView]:
        """The board and its top ``limit`` players in rank order."""

    def list_players(self, board_id: str, offset: int, limit: int) -> Deferred[list[Standing]]:
        """A page of the board's whole ranking, in rank order, with ranks."""

    def around(self, board_id: str, player_id: str, n: int) -> Deferred[list[Standing]]:
        """The player and up to ``n`` players either side of it in the ranking."""

    def changes(self) -> ChangeStream:
        """A stream of every committed player write from now on."""


class ChangeQueue:
    """An in-process L{ChangeStream}: changes are put in, consumers wait on L{next}."""

    def __init__(self, on_close: object = None) -> None:
        self._pending: deque[Change] = deque()
        self._waiting: deque[Deferred[Change]] = deque()
        self._closed = False
        self._on_close = on_close

    def put(self, change: Change) -> None:
        if self._closed:
            return
        if self._waiting:
            self._waiting.popleft().callback(change)
        else:
            self._pending.append(change)

    def next(self) -> Deferred[Change]:
        if self._closed:
            return fail(CancelledError("change stream closed"))
        if self._pending:
            return succeed(self._pending.popleft())

        def cancel(d: Deferred[Change]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: Deferred[Change] = Deferred(cancel)
        self._waiting.append(d)
        return d

    def close(self) -> None:
        self.fail(CancelledError("change stream closed"))

    def fail(self, reason: Exception) -> None:
        """End the stream with an error: a pending L{next} fails with ``reason`` (a store
        whose change feed broke), so the consumer knows to re-open and resync."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        while self._waiting:
            self._waiting.popleft().errback(reason)
        if callable(self._on_close):
            self._on_close(self)

    def __len__(self) -> int:
        return len(self._pending)


class ChangeFanout:
    """Hands each change to every open L{ChangeQueue} (the SQLite store's notifications)."""

    def __init__(self) -> None:
        self._queues: set[ChangeQueue] = set()

    def subscribe(self) -> ChangeQueue:
        q = ChangeQueue(on_close=self._queues.discard)
        self._queues.add(q)
        return q

    def emit(self, change: Change) -> None:
        for q in list(self._queues):
            q.put(change)

    def close_all(self) -> None:
        for q in list(self._queues):
            q.close()
