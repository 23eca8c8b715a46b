# -*- test-case-name: tests.test_pushpin_harness -*-
"""Integration tests against a real Pushpin: GRIP hold streams, publishing, Grip-Sig."""

from __future__ import annotations

import socket
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from leaderboard.feed.grip import (
    GripPublisher,
    channel_for_board,
    grip_request_verified,
    hold_stream_headers,
    parse_grip_urls,
)
from tests.harness.pushpin import PushpinHarness, pushpin_fixture, pushpin_for

FIRST = b'event: update\nid: e1\ndata: {"id":"demo","players":[]}\n\n'
SECOND = b'event: update\nid: e2\ndata: {"id":"demo","players":[{"id":"p","score":1}]}\n\n'
CHANNEL = channel_for_board("demo")
WAIT = 20.0  # a guard against hanging, not a speed requirement


class HoldingOrigin(Resource):
    """Answers every GET with a GRIP stream hold whose first event is ``FIRST``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.grip_sigs: list[bytes | None] = []

    def render_GET(self, request: Request) -> bytes:
        self.grip_sigs.append(request.getHeader(b"grip-sig"))
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        for name, value in hold_stream_headers(CHANNEL, 55).items():
            request.setHeader(name, value)
        return FIRST


class Origin:
    def __init__(self) -> None:
        self.resource = HoldingOrigin()
        site = Site(self.resource)  # type: ignore[no-untyped-call]
        self.listening = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[arg-type]
        self.port: int = self.listening.getHost().port  # type: ignore[attr-defined]


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    pytest_twisted.blockon(server.listening.stopListening())


pushpin = pushpin_fixture("origin")


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class StreamReader(Protocol):
    """Collects a streamed response body and fires waiters when it holds enough bytes."""

    def __init__(self) -> None:
        self.received = b""
        self.finished: Deferred[None] = Deferred()
        self._waiters: list[tuple[Callable[[bytes], bool], Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        ready = [(test, d) for test, d in self._waiters if test(self.received)]
        for entry in ready:
            self._waiters.remove(entry)
            entry[1].callback(self.received)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        for _, d in self._waiters:
            d.errback(reason)
        self._waiters.clear()
        self.finished.callback(None)

    def wait_for(self, test: Callable[[bytes], bool]) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        if test(self.received):
            d.callback(self.received)
        else:
            self._waiters.append((test, d))
        d.addTimeout(WAIT, reactor)
        return d

    def close(self) -> Deferred[None]:
        assert self.transport is not None
        self.transport.stopProducing()  # type: ignore[attr-defined]
        return self.finished


def make_client() -> HTTPClient:
    pool = HTTPConnectionPool(reactor, persistent=False)  # type: ignore[no-untyped-call]
    return HTTPClient(Agent(reactor, pool=pool))  # type: ignore[no-untyped-call]


def open_stream(url: str) -> Generator[Deferred[Any], Any, tuple[Any, StreamReader]]:
    response = yield make_client().get(
        url, unbuffered=True, headers=Headers({b"Accept": [b"text/event-stream"]})
    )
    reader = StreamReader()
    response.deliverBody(reader)
    return response, reader


@pytest_twisted.inlineCallbacks
def test_publish_reaches_client_through_pushpin(
    pushpin: PushpinHarness, origin: Origin
) -> Generator[Deferred[Any], Any, None]:
    response, reader = yield from open_stream(pushpin.http_url + "/boards/demo/")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
    assert response.headers.getRawHeaders(b"grip-hold") is None
    yield reader.wait_for(lambda data: len(data) >= len(FIRST))
    assert reader.received == FIRST

    publisher = GripPublisher(parse_grip_urls(pushpin.grip_url), reactor)
    try:
        yield publisher.publish(CHANNEL, SECOND, "e2", prev_id="e1")
        assert (publisher.published, publisher.failed) == (1, 0)
        yield reader.wait_for(lambda data: len(data) >= len(FIRST + SECOND))
        assert reader.received == FIRST + SECOND
    finally:
        yield publisher.stop()
        yield reader.close()


@pytest_twisted.inlineCallbacks
def test_grip_sig_signed_with_sig_key(
    pushpin: PushpinHarness, origin: Origin
) -> Generator[Deferred[Any], Any, None]:
    _response, reader = yield from open_stream(pushpin.http_url + "/boards/demo/")
    yield reader.wait_for(lambda data: len(data) >= len(FIRST))
    yield reader.close()
    [sig] = origin.resource.grip_sigs
    assert sig
    assert grip_request_verified(sig, parse_grip_urls(pushpin.grip_url_verified))
    wrong = PushpinHarness(origin.port, sig_key="a-different-key-" * 4, sig_iss=pushpin.sig_iss)
    assert not grip_request_verified(sig, parse_grip_urls(wrong.grip_url_verified))
    other_iss = PushpinHarness(origin.port, sig_key=pushpin.sig_key, sig_iss="not-pushpin")
    assert not grip_request_verified(sig, parse_grip_urls(other_iss.grip_url_verified))
    # Without a verify key, the header's presence is what counts.
    assert grip_request_verified(sig, parse_grip_urls(pushpin.grip_url))

    direct = yield make_client().get(f"http://127.0.0.1:{origin.port}/boards/demo/")
    yield direct.content()
    assert origin.resource.grip_sigs[-1] is None


@pytest_twisted.inlineCallbacks
def test_one_publisher_two_proxies_and_a_dead_one(
    pushpin: PushpinHarness, origin: Origin, refusing_port: int
) -> Generator[Deferred[Any], Any, None]:
    with pushpin_for(origin.port) as second:
        assert second.http_port != pushpin.http_port
        readers = []
        for harness in (pushpin, second):
            _, reader = yield from open_stream(harness.http_url + "/boards/demo/")
            yield reader.wait_for(lambda data: len(data) >= len(FIRST))
            readers.append(reader)

        urls = ",".join([f"http://127.0.0.1:{refusing_port}", pushpin.grip_url, second.grip_url])
        publisher = GripPublisher(parse_grip_urls(urls), reactor, retry_initial=60.0)
        try:
            yield publisher.publish(CHANNEL, SECOND, "e2")
            assert (publisher.published, publisher.failed) == (2, 1)
            for reader in readers:
                received = yield reader.wait_for(lambda data: len(data) >= len(FIRST + SECOND))
                assert received == FIRST + SECOND
        finally:
            yield publisher.stop()
            for reader in readers:
                yield reader.close()
