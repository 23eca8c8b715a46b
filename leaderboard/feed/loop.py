# -*- test-case-name: tests.test_feed -*-
"""The feed loop: store changes in, coalesced per board, board events out to the sinks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from leaderboard.errors import NotFound
from leaderboard.model import Event, board_event, deleted_event
from leaderboard.store import Change, ChangeStream, Store


class EventSink(Protocol):
    """Where board events go: the native SSE hub, the GRIP publisher."""

    def wants(self, board: str) -> bool:
        """Whether an event for this board would reach anyone through this sink."""

    def publish(self, board: str, event: Event) -> None: ...


class BoardFeed(Service):
    """Consumes the store's change stream and keeps every sink at each board's current top N.

    A change marks its board dirty; the board is read once per ``window`` at most (at once
    after a quiet window, else when the window ends) and its event handed to the sinks,
    unless the top N is unchanged
    (same event id as last sent). Reads of one board never overlap, so events leave in
    order; a board changed during its read is read again after the next window. A failed
    read is retried with back-off; a failed stream is re-opened with back-off and followed
    by a resync of every watched board. Nothing here blocks: every wait is a Deferred and
    every timer comes from the injected clock.
    """

    log = Logger()

    def __init__(self, store: Store, sinks: list[EventSink], clock: IReactorTime,
                 top_n: int = 5, window: float = 0.05, max_backoff: float = 10.0,
                 max_boards: int = 10_000,
                 lag_observer: Callable[[float], None] | None = None) -> None:
        self.store = store
        self.sinks = sinks
        self.clock = clock
        self.top_n = top_n
        self.window = window
        self.max_backoff = max_backoff
        self.max_boards = max_boards
        #: Called with the seconds from a board's first unsent change to its event going out.
        self.lag_observer = lag_observer
        self._changed_at: dict[str, float] = {}
        self._stream: ChangeStream | None = None
        self._pending: Deferred[Change] | None = None
        self._dirty: set[str] = set()
        self._reading: set[str] = set()
        self._flush_call: IDelayedCall | None = None
        self._last_flush = float("-inf")
        self._retry_call: IDelayedCall | None = None
        #: The last event sent per board: what the sinks show now. Bounded by ``max_boards``.
        self._latest: dict[str, Event] = {}
        self._read_failures = 0
        self._stream_failures = 0
        self.running_loop = False
        self.reads = 0
        self.events = 0
        self.changes_seen = 0

    # -- lifecycle ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._open_stream()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        for call in (self._flush_call, self._retry_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._retry_call = None
        if self._pending is not None:
            self._pending.cancel()
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self.running_loop = False
        self._changed_at.clear()
        return None

    def _open_stream(self) -> None:
        self._retry_call = None
        if not self.running:
            return
        try:
            self._stream = self.store.changes()
        except Exception:
            self.log.failure("cannot open the change stream")
            self._stream_failed()
            return
        self.running_loop = True
        self._next()

    def _next(self) -> None:
        if self._stream is None or not self.running:
            return
        d = self._stream.next()
        self._pending = d
        d.addCallbacks(self._got, self._lost)

    def _got(self, change: Change) -> None:
        self._pending = None
        self._stream_failures = 0
        self.changes_seen += 1
        if change.board is None:
            self.resync()
        else:
            self.mark(change.board)
        self._next()

    def _lost(self, failure: Any) -> None:
        self._pending = None
        if failure.check(CancelledError) and not self.running:
            return
        self.log.failure("the change stream failed; re-opening", failure)
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._stream_failed()

    def _stream_failed(self) -> None:
        self.running_loop = False
        self._stream_failures += 1
        delay = min(self.window * 2**self._stream_failures, self.max_backoff)
        self._retry_call = self.clock.callLater(delay, self._reopen)

    def _reopen(self) -> None:
        self._open_stream()
        # Changes may have been missed while the stream was down.
        self.resync()

    # -- coalescing -----------------------------------------------------------------------

    def latest(self, board: str) -> Event | None:
        """The board's current event, when the feed knows it without a read: it follows the
        board, no change to it is waiting or being read, and the change stream is up.
        Stream requests start from it instead of reading the board each."""
        if not self.running_loop or board in self._dirty or board in self._reading:
            return None
        return self._latest.get(board)

    def resync(self) -> None:
        """Re-read every board a sink may care about (after a gap in the change stream)."""
        watched: set[str] = set(self._latest)
        for sink in self.sinks:
            boards = getattr(sink, "boards", None)
            if callable(boards):
                watched.update(boards())
        for board in watched:
            self.mark(board)

    def mark(self, board: str) -> None:
        """Note a change to ``board``; its event goes out after the coalescing window."""
        if not any(sink.wants(board) for sink in self.sinks):
            self._latest.pop(board, None)  # no longer followed: its last event goes stale
            return
        self._dirty.add(board)
        self._changed_at.setdefault(board, self.clock.seconds())
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(self._flush_delay(), self._flush)

    def _flush_delay(self) -> float:
        """Leading edge: a change after a quiet window is read at once (in the next reactor
        turn, so a burst within one turn still costs one read); later changes wait for the
        window to end. At most one read per board per window either way."""
        return max(0.0, self._last_flush + self.window - self.clock.seconds())

    def _flush(self) -> None:
        self._flush_call = None
        self._last_flush = self.clock.seconds()
        ready = self._dirty - self._reading
        self._dirty -= ready
        for board in ready:
            self._read(board)

    @inlineCallbacks
    def _read(self, board: str) -> Any:
        self._reading.add(board)
        self.reads += 1
        # Changes arriving during the read start a new lag measurement.
        changed_at = self._changed_at.pop(board, None)
        try:
            view = yield self.store.board_view(board, self.top_n)
        except NotFound:
            # The board is gone: its listeners get a last ``deleted`` event.
            self._latest.pop(board, None)
            self._observe_lag(changed_at)
            self._send(board, deleted_event(board))
            self._done_reading(board)
            return
        except Exception:
            self._read_failures += 1
            delay = min(self.window * 2**self._read_failures, self.max_backoff)
            self.log.warn("reading board {board} failed ({error}); retrying in {delay:.2f}s",
                          board=board, delay=delay, error=str(sys.exc_info()[1]))
            self._reading.discard(board)
            self._dirty.add(board)
            if changed_at is not None:
                self._changed_at[board] = min(changed_at, self._changed_at.get(board, changed_at))
            if self._flush_call is None:
                self._flush_call = self.clock.callLater(delay, self._flush)
            return
        self._read_failures = 0
        event = board_event(view)
        last = self._latest.get(board)
        if last is None or last.id != event.id:
            self._remember(board, event)
            self._observe_lag(changed_at)
            self._send(board, event)
        self._done_reading(board)

    def _observe_lag(self, changed_at: float | None) -> None:
        if changed_at is not None and self.lag_observer is not None:
            self.lag_observer(self.clock.seconds() - changed_at)

    def _send(self, board: str, event: Event) -> None:
        self.events += 1
        for sink in self.sinks:
            try:
                sink.publish(board, event)
            except Exception:
                self.log.failure("sink {sink!r} failed on board {board}", sink=sink, board=board)

    def _remember(self, board: str, event: Event) -> None:
        self._latest.pop(board, None)
        self._latest[board] = event
        if len(self._latest) > self.max_boards:
            del self._latest[next(iter(self._latest))]  # the least recently changed

    def _done_reading(self, board: str) -> None:
        self._reading.discard(board)
        if board in self._dirty and self._flush_call is None:
            self._flush_call = self.clock.callLater(self._flush_delay(), self._flush)
