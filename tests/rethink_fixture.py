"""RethinkDB stores for tests: a real server when LEADERBOARD_TEST_RETHINKDB_URL is set,
the wire-protocol test server (tests.reqlserver) otherwise.

``rethink_store(reactor)`` gives a started store on a fresh, empty database and a cleanup
that stops it and drops the database (real server) or stops the test server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import connectionDone
from twisted.protocols import portforward
from twisted.python.failure import Failure

from leaderboard.store.rethink import RethinkSettings, RethinkStore, parse_rethink_url

ENV = "LEADERBOARD_TEST_RETHINKDB_URL"
Cleanup = Callable[[], Awaitable[None]]


def real_server_url() -> str | None:
    return os.environ.get(ENV) or None


def fresh_db_name(base: str = "leaderboard_test") -> str:
    return f"{base}_{uuid.uuid4().hex[:12]}"


def driver() -> Any:
    """A ``RethinkDB()`` instance in Twisted mode, for tests that write from outside."""
    from rethinkdb import RethinkDB  # type: ignore[import-untyped]

    r = RethinkDB()
    r.set_loop_type("twisted")
    return r


async def connect(settings: RethinkSettings) -> Any:
    """A plain driver connection (not the store's), e.g. to write from outside the store."""
    return await driver().connect(
        host=settings.host, port=settings.port, db=settings.db,
        user=settings.user, password=settings.password, timeout=5,
    )


async def drop_database(settings: RethinkSettings) -> None:
    r = driver()
    conn = await connect(replace(settings, db="test"))
    try:
        if settings.db in await r.db_list().run(conn):
            await r.db_drop(settings.db).run(conn)
    finally:
        await conn.close(noreply_wait=False)


@dataclass
class Database:
    """Where a test's RethinkDB lives; ``server`` is the test server, if it is one."""

    settings: RethinkSettings
    server: Any = None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
        else:
            await drop_database(self.settings)


async def database(reactor: Any, *, test_server: bool = False) -> Database:
    """A fresh database: on the real server unless ``test_server`` or no URL is set."""
    url = real_server_url()
    if url and not test_server:
        return Database(replace(parse_rethink_url(url), db=fresh_db_name()))
    from tests.reqlserver import start_server

    server = await start_server(reactor)
    return Database(RethinkSettings(server.host, server.port, fresh_db_name()), server)


async def rethink_store(reactor: Any, **options: Any) -> tuple[RethinkStore, Cleanup]:
    """A started L{RethinkStore} on a fresh database, and the cleanup to await after."""
    db = await database(reactor)
    store = RethinkStore(db.settings, reactor, **options)
    try:
        await store.start()
    except BaseException:
        await db.close()
        raise

    async def cleanup() -> None:
        try:
            await store.stop()
        finally:
            await db.close()

    return store, cleanup


# -- cutting the network between a store and its database ---------------------------------


class _Back(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        front = self.peer
        if front is not None and not front.factory.frozen:  # type: ignore[attr-defined]
            super().dataReceived(data)


class _BackFactory(portforward.ProxyClientFactory):
    protocol = _Back
    noisy = False


class _Front(portforward.ProxyServer):
    factory: CuttableProxy  # type: ignore[assignment]
    clientProtocolFactory = _BackFactory

    def dataReceived(self, data: bytes) -> None:
        if not self.factory.frozen:
            super().dataReceived(data)

    def connectionMade(self) -> None:
        if self.factory.severed:
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.open.discard(self)
        if self.peer is not None:
            self.peer.transport.abortConnection()  # type: ignore[union-attr]
            self.peer = None


class CuttableProxy(portforward.ProxyFactory):
    """A TCP forwarder to the database that can drop every connection and refuse new ones
    (the database "going away", on a real server as on the test server), or freeze: keep
    every connection open and drop all bytes (a half-open network, where no RST comes)."""

    protocol = _Front  # type: ignore[assignment]
    noisy = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.severed = False
        self.frozen = False
        self.open: set[_Front] = set()
        self.listening: IListeningPort | None = None

    def listen(self, reactor: Any) -> int:
        self.listening = reactor.listenTCP(0, self, interface="127.0.0.1")
        return int(self.listening.getHost().port)  # type: ignore[union-attr]

    def sever(self) -> None:
        self.severed = True
        for front in list(self.open):
            front.transport.abortConnection()  # type: ignore[attr-defined]

    def restore(self) -> None:
        self.severed = False

    async def close(self) -> None:
        self.sever()
        if self.listening is not None:
            d = self.listening.stopListening()
            if d is not None:
                await d
