# -*- test-case-name: tests.test_hub -*-
"""The native SSE hub: the event streams this process holds itself, per board."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from leaderboard.model import Event

KEEPALIVE = b": keep-alive\n\n"


@implementer(IPushProducer)
class SseListener:
    """One open stream: a twisted.web request held open, written to as events arrive.

    It registers as the request's push producer, so the transport tells it when its
    buffer is full. A paused listener is not written to: it only remembers that it missed
    an event, and gets the board's latest event when the transport drains. Memory per
    stalled client stays bounded by the transport's buffer plus one event; one stalled
    longer than ``stall_timeout`` is dropped.
    """

    def __init__(self, hub: SseHub, board: str, request: Any) -> None:
        self.hub = hub
        self.board = board
        self.request = request
        self.paused_since: float | None = None
        self.missed = False
        self.ended: Deferred[bytes] = Deferred(self._cancelled)
        self._closed = False

    # IPushProducer, called by the transport
    def pauseProducing(self) -> None:
        if self.paused_since is None:
            self.paused_since = self.hub.clock.seconds()

    def resumeProducing(self) -> None:
        self.paused_since = None
        if self.missed and not self._closed:
            self.missed = False
            latest = self.hub.latest(self.board)
            if latest is not None:
                self.request.write(latest.encoded)

    def stopProducing(self) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        if self.paused_since is not None:
            self.missed = True
            return
        self.request.write(data)

    def _cancelled(self, d: Deferred[bytes]) -> None:
        # The client went away (Klein cancels the handler's Deferred): forget it at once.
        self._closed = True
        self.hub.forget(self)

    def close(self) -> None:
        """End the stream from the server side (shutdown, or a stalled reader)."""
        if self._closed:
            return
        self._closed = True
        self.hub.forget(self)
        if not self.ended.called:
            self.ended.callback(b"")

    def abort(self) -> None:
        """Drop a stalled reader: close its connection without waiting on its buffer."""
        self.close()
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None:
            transport.abortConnection()


class SseHub:
    """Holds native listeners by board, fans events out, and sends keep-alives.

    ``latest`` keeps each watched board's last event, so a new listener on a board that
    already has listeners starts from it without a database read.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, keepalive_seconds: float = 15.0,
                 max_streams: int = 20000, stall_timeout: float = 30.0) -> None:
        self.clock = clock
        self.keepalive_seconds = keepalive_seconds
        self.max_streams = max_streams
        self.stall_timeout = stall_timeout
        self._boards: dict[str, set[SseListener]] = {}
        self._latest: dict[str, Event] = {}
        self._count = 0
        self._keepalive_call: IDelayedCall | None = None
        self.events_sent = 0

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.max_streams

    def wants(self, board: str) -> bool:
        return board in self._boards

    def latest(self, board: str) -> Event | None:
        return self._latest.get(board)

    def boards(self) -> list[str]:
        return list(self._boards)

    def listeners(self, board: str) -> int:
        return len(self._boards.get(board, ()))

    def add(self, request: Any, board: str, first: Event) -> SseListener:
        """Start a stream: headers and the first event go out now."""
        listener = SseListener(self, board, request)
        listeners = self._boards.setdefault(board, set())
        listeners.add(listener)
        self._count += 1
        self._latest.setdefault(board, first)
        request.registerProducer(listener, True)
        request.write(first.encoded)
        if self._keepalive_call is None:
            self._schedule_keepalive()
        return listener

    def forget(self, listener: SseListener) -> None:
        listeners = self._boards.get(listener.board)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        self._count -= 1
        if not listeners:
            del self._boards[listener.board]
            self._latest.pop(listener.board, None)
        try:
            listener.request.unregisterProducer()
        except Exception:  # noqa: S110 - the request may already be finished
            pass
        if self._count == 0 and self._keepalive_call is not None:
            if self._keepalive_call.active():
                self._keepalive_call.cancel()
            self._keepalive_call = None

    def publish(self, board: str, event: Event) -> None:
        """Send an event to every listener of the board (an L{EventSink})."""
        listeners = self._boards.get(board)
        if not listeners:
            return
        latest = self._latest.get(board)
        if latest is not None and latest.id == event.id:
            return  # the listeners have this state already
        self._latest[board] = event
        data = event.encoded
        count = len(listeners)
        for listener in list(listeners):
            listener.send(data)
            if event.final:
                listener.close()
        self.events_sent += count

    def _schedule_keepalive(self) -> None:
        self._keepalive_call = self.clock.callLater(self.keepalive_seconds, self._keepalive)

    def _keepalive(self) -> None:
        self._keepalive_call = None
        now = self.clock.seconds()
        for listeners in list(self._boards.values()):
            for listener in list(listeners):
                if (listener.paused_since is not None
                        and now - listener.paused_since > self.stall_timeout):
                    self.log.info("dropping a stalled SSE reader on {board}", board=listener.board)
                    listener.abort()
                else:
                    listener.send(KEEPALIVE)
        if self._count:
            self._schedule_keepalive()

    def close_all(self) -> None:
        """End every stream cleanly (server shutdown)."""
        for listeners in list(self._boards.values()):
            for listener in list(listeners):
                listener.close()
