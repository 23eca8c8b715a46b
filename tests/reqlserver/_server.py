# -*- test-case-name: tests.test_reqlserver -*-
"""Starting, stopping and restarting the wire-protocol test server."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from tests.reqlserver._data import Catalog, Entropy, Index, RandomEntropy, Table
from tests.reqlserver._protocol import ReqlProtocol
from tests.reqlserver._scram import Credentials
from tests.reqlserver._terms import Evaluator, Server


class ReqlService(Server):
    """The state of one test server that outlives its listening port."""

    log = Logger()

    def __init__(self, reactor: Any, password: str = "", entropy: Entropy | None = None,
                 server_name: str = "reqlserver", data_path: str | None = None) -> None:
        self.reactor = reactor
        self.entropy: Entropy = entropy or RandomEntropy()
        self.catalog = Catalog(self.entropy, server_name)
        # RethinkDB hashes an empty password with one iteration, others with 4096.
        self.credentials = Credentials.for_password(
            password, self.entropy.salt(), 1 if password == "" else 4096
        )
        self.data_path = data_path
        self.connections: set[ReqlProtocol] = set()
        self.unavailable_until = 0.0
        if data_path and os.path.exists(data_path):
            with open(data_path, encoding="utf-8") as f:
                data = json.load(f)
            self.catalog.load(data, self._make_index)

    def _make_index(self, table: Table, name: str, function: Any, multi: bool,
                    geo: bool) -> Index:
        return Evaluator(self, {}).make_index(table, name, function, multi, geo)

    def available(self, table: Table) -> bool:
        return self.seconds() >= self.unavailable_until

    def seconds(self) -> float:
        clock: IReactorTime = self.reactor
        return float(clock.seconds())

    def persist(self) -> None:
        if self.data_path:
            self.catalog.save(self.data_path)


class _ReqlFactory(Factory):
    def __init__(self, service: ReqlService) -> None:
        self.service = service

    def buildProtocol(self, addr: Any) -> ReqlProtocol:
        return ReqlProtocol(self.service)


class RunningServer:
    """A listening test server; ``stop()`` and ``restart()`` keep its data."""

    log = Logger()

    def __init__(self, service: ReqlService, interface: str = "127.0.0.1") -> None:
        self.service = service
        self.interface = interface
        self.port = 0
        self._listening: IListeningPort | None = None

    @property
    def host(self) -> str:
        return self.interface

    @property
    def catalog(self) -> Catalog:
        return self.service.catalog

    @property
    def connections(self) -> int:
        return len(self.service.connections)

    def listen(self, port: int = 0) -> int:
        reactor: IReactorTCP = self.service.reactor
        factory: Any = _ReqlFactory(self.service)
        self._listening = reactor.listenTCP(port, factory, interface=self.interface)
        address: Any = self._listening.getHost()
        self.port = int(address.port)
        self.log.info("reqlserver listening on {host}:{port}", host=self.interface,
                      port=self.port)
        return self.port

    def stop(self) -> Deferred[None]:
        """Close the listening port and drop every client connection (a server going away)."""
        waits: list[Deferred[Any]] = []
        if self._listening is not None:
            d = self._listening.stopListening()
            if d is not None:
                waits.append(d)
            self._listening = None
        for proto in list(self.service.connections):
            waits.append(proto.lost)
            assert proto.transport is not None
            proto.transport.abortConnection()  # type: ignore[attr-defined]
        if not waits:
            return succeed(None)
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    def restart(self, unavailable_for: float = 0.0) -> Deferred[None]:
        """Listen again on the same port with the same data.

        With ``unavailable_for`` > 0, ``changes()`` fails for that many seconds and
        ``r.db(x).wait()`` answers only once they have passed, like a real server that is
        still electing its primary replicas."""
        self.service.unavailable_until = self.service.seconds() + unavailable_for
        self.listen(self.port)
        return succeed(None)


def start_server(reactor: Any, password: str = "", port: int = 0, interface: str = "127.0.0.1",
                 data_path: str | None = None, entropy: Entropy | None = None,
                 server_name: str = "reqlserver") -> Deferred[RunningServer]:
    """Start a test server; fires with the RunningServer once it listens."""
    service = ReqlService(reactor, password=password, entropy=entropy,
                          server_name=server_name, data_path=data_path)
    running = RunningServer(service, interface)
    try:
        running.listen(port)
    except Exception:
        return fail()
    return succeed(running)
