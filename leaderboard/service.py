# -*- test-case-name: tests.test_integration -*-
"""The twistd service tree: the store's lifecycle, the feed loop and the web site."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.resource import IResource

from leaderboard.errors import AlreadyExists, StoreUnavailable
from leaderboard.store import Store

DEMO_BOARD = ("demo", "Demo")
DEMO_PLAYERS = [
    ("stan", "Stan", 12),
    ("kyle", "Kyle", 10),
    ("kenny", "Kenny", 8),
    ("eric", "Eric", 6),
    ("butters", "Butters", 4),
]


@inlineCallbacks
def seed_demo(store: Store, resume: bool = False) -> Any:
    """Create the demo board with five players when no board exists (or, with ``resume``,
    finish a seeding that an outage interrupted). Safe to race and to repeat: whatever
    already exists is left as it is."""
    if not resume:
        empty = yield store.is_empty()
        if not empty:
            return False
    board_id, name = DEMO_BOARD
    try:
        yield store.create_board(board_id, name)
    except AlreadyExists:
        if not resume:
            return False  # another process is seeding
    for pid, pname, score in DEMO_PLAYERS:
        try:
            yield store.create_player(board_id, pid, pname)
        except AlreadyExists:
            continue
        yield store.add_score(board_id, pid, score)
    return True


class StoreService(Service):
    """Starts the store, retrying with back-off while the database is unreachable."""

    log = Logger()

    def __init__(
        self,
        store: Store,
        clock: Any,
        seed: bool = True,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
    ) -> None:
        self.store = store
        self._clock = clock
        self._seed = seed
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._retry: Any = None
        self._stopping = False
        self.seeded = False
        self._seeding = False
        self.ready: Deferred[None] = Deferred()
        self.is_ready = False

    def startService(self) -> None:
        super().startService()
        self._attempt(self._first_delay)

    def _attempt(self, delay: float) -> None:
        self._retry = None
        d = self.store.start()
        if self._seed:
            # Once a first attempt has begun seeding, a retry finishes the job.
            d.addCallback(lambda _: self._seed_demo())
            d.addCallback(lambda seeded: setattr(self, "seeded", bool(seeded)))

        def started(_: object) -> None:
            self.is_ready = True
            self.log.info("store ready")
            self.ready.callback(None)

        def failed(f: Any) -> None:
            if self._stopping:
                return
            reason = f.value.message if f.check(StoreUnavailable) else f.getErrorMessage()
            self.log.warn(
                "store not ready ({reason}); retrying in {delay:.1f}s", reason=reason, delay=delay
            )
            self._retry = self._clock.callLater(
                delay, self._attempt, min(delay * 2, self._max_delay)
            )

        d.addCallbacks(started, failed)

    @inlineCallbacks
    def _seed_demo(self) -> Any:
        if not self._seeding:
            empty = yield self.store.is_empty()
            if not empty:
                return False
            self._seeding = True
        seeded = yield seed_demo(self.store, resume=True)
        return seeded

    def stopService(self) -> Deferred[None]:
        self._stopping = True
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        return self.store.stop()


class WebService(Service):
    """Listens on a Twisted endpoint string and serves a resource through a site."""

    log = Logger()

    def __init__(self, reactor: Any, endpoint: str, site: Any) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self.site = site
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def startService(self) -> None:
        super().startService()
        d = serverFromString(self._reactor, self._endpoint).listen(self.site)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            host: Any = port.getHost()
            if hasattr(host, "port"):
                shown = "127.0.0.1" if host.host in ("0.0.0.0", "::") else host.host
                self.log.info(
                    "leaderboard listening on http://{host}:{port}/", host=shown, port=host.port
                )
            else:
                self.log.info("leaderboard listening on {address}", address=host)
            self.listening.callback(port)
            return port

        def failed(f: Any) -> None:
            self.log.failure("cannot listen on {endpoint}", f, endpoint=self._endpoint)
            from twisted.internet import reactor as global_reactor

            global_reactor.stop()  # type: ignore[attr-defined]

        d.addCallbacks(listening, failed)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        if self.port is None:
            return None
        return self.port.stopListening()


class StreamsService(Service):
    """Ends native streams cleanly and stops the publisher on shutdown (after the web port
    has stopped listening, before the feed and the store stop)."""

    def __init__(self, hub: Any, publisher: Any) -> None:
        self.hub = hub
        self.publisher = publisher

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        if self.hub is not None:
            self.hub.close_all()
        if self.publisher is not None:
            return self.publisher.stop()  # type: ignore[no-any-return]
        return None


class LeaderboardService(MultiService):
    """The whole server. Children start in order store, feed, web and stop in reverse."""

    log = Logger()

    def __init__(
        self,
        store_service: StoreService,
        web: WebService,
        feed: Service | None = None,
        hub: Any = None,
        publisher: Any = None,
    ) -> None:
        super().__init__()
        self.store_service = store_service
        self.web = web
        self.feed = feed
        self.hub = hub
        self.publisher = publisher
        store_service.setServiceParent(self)
        if feed is not None:
            feed.setServiceParent(self)
        if hub is not None or publisher is not None:
            StreamsService(hub, publisher).setServiceParent(self)
        web.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        waits: list[Deferred[Any]] = [self.web.listening, self.store_service.ready]
        d: Deferred[Any] = DeferredList(waits, fireOnOneErrback=True)

        def announce(results: list[Any]) -> None:
            port = self.web.port
            host: Any = port.getHost() if port is not None else None
            if self.store_service.seeded and host is not None and hasattr(host, "port"):
                shown = "127.0.0.1" if host.host in ("0.0.0.0", "::") else host.host
                self.log.info(
                    "demo board ready: http://{host}:{port}/boards/demo/",
                    host=shown,
                    port=host.port,
                )

        d.addCallback(announce)
        d.addErrback(lambda f: None)

    def resource(self) -> IResource:
        return self.web.site.resource  # type: ignore[no-any-return]
