"""Board streams in memory: the native SSE hub (with a Clock) and GRIP hold answers."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from leaderboard.feed.grip import parse_grip_urls
from leaderboard.feed.hub import KEEPALIVE, SseHub
from leaderboard.model import Board, BoardView, Player, Standing, board_event
from leaderboard.resources import AppContext, build_app
from leaderboard.resources.streams import BoardStreams
from leaderboard.service import seed_demo
from leaderboard.store.sqlite import SqliteStore
from tests.test_api import done


def event(score: int, board: str = "demo") -> Any:
    p = Player(board, "p", "P", score)
    return board_event(BoardView(Board(board, board.title()), (Standing(p, 1),)))


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeChannel:
    def __init__(self) -> None:
        self.transport = FakeTransport()


class StreamRequest(DummyRequest):
    """DummyRequest loops over pull producers; a push producer is only registered."""

    def registerProducer(self, prod: Any, streaming: bool) -> None:
        assert streaming
        self.producer = prod

    def unregisterProducer(self) -> None:
        self.producer = None


def request() -> DummyRequest:
    r = StreamRequest([b""])
    r.channel = FakeChannel()  # type: ignore[attr-defined]
    return r


def test_first_event_then_updates_only_to_that_board() -> None:
    hub = SseHub(Clock(), keepalive_seconds=15)
    a, b = request(), request()
    hub.add(a, "demo", event(1))
    hub.add(b, "other", event(1, "other"))
    assert a.written == [event(1).encoded]
    hub.publish("demo", event(2))
    assert a.written == [event(1).encoded, event(2).encoded]
    assert b.written == [event(1, "other").encoded]
    assert len(hub) == 2 and hub.listeners("demo") == 1


def test_the_same_state_is_not_sent_twice() -> None:
    hub = SseHub(Clock())
    a = request()
    hub.add(a, "demo", event(1))
    hub.publish("demo", event(1))
    assert a.written == [event(1).encoded]


def test_keepalive_comment_on_the_clock() -> None:
    clock = Clock()
    hub = SseHub(clock, keepalive_seconds=15)
    a = request()
    hub.add(a, "demo", event(1))
    clock.advance(14.9)
    assert a.written[-1] == event(1).encoded
    clock.advance(0.1)
    assert a.written[-1] == KEEPALIVE
    clock.advance(15)
    assert a.written.count(KEEPALIVE) == 2


def test_a_listener_that_disconnects_is_forgotten_at_once() -> None:
    clock = Clock()
    hub = SseHub(clock)
    a = request()
    listener = hub.add(a, "demo", event(1))
    listener.ended.cancel()  # what Klein does when the client goes away
    assert len(hub) == 0 and not hub.wants("demo") and hub.latest("demo") is None
    hub.publish("demo", event(2))
    assert a.written == [event(1).encoded]
    assert clock.getDelayedCalls() == []  # no keep-alive timer left behind


def test_a_paused_reader_gets_only_the_latest_state_when_it_drains() -> None:
    hub = SseHub(Clock())
    a = request()
    listener = hub.add(a, "demo", event(1))
    listener.pauseProducing()
    for score in range(2, 50):
        hub.publish("demo", event(score))
    assert a.written == [event(1).encoded]  # nothing buffered while paused
    listener.resumeProducing()
    assert a.written == [event(1).encoded, event(49).encoded]


def test_a_stalled_reader_is_dropped() -> None:
    clock = Clock()
    hub = SseHub(clock, keepalive_seconds=15, stall_timeout=30)
    a = request()
    listener = hub.add(a, "demo", event(1))
    listener.pauseProducing()
    clock.advance(15)
    assert len(hub) == 1
    clock.advance(30)
    assert len(hub) == 0
    assert a.channel.transport.aborted  # type: ignore[attr-defined]


def test_close_all_ends_streams_cleanly() -> None:
    hub = SseHub(Clock())
    listeners = [hub.add(request(), "demo", event(1)) for _ in range(3)]
    hub.close_all()
    assert len(hub) == 0
    assert all(lst.ended.called and lst.ended.result == b"" for lst in listeners)


def test_max_streams() -> None:
    hub = SseHub(Clock(), max_streams=2)
    hub.add(request(), "demo", event(1))
    assert not hub.full()
    hub.add(request(), "demo", event(1))
    assert hub.full()


# -- GRIP answers through the real Klein resource ------------------------------------------

KEY = "a-long-test-signing-key-for-grip-sig-checks"


@pytest.fixture
def grip_app() -> Any:
    store = SqliteStore(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
    done(store.start())
    done(seed_demo(store))
    proxies = parse_grip_urls(f"http://127.0.0.1:5561/?verify-key={KEY}")
    hub = SseHub(Clock())
    streams = BoardStreams(store, hub, 5, 20, proxies)
    app = build_app(AppContext(store=store, clock=Clock(), streams=streams))
    yield StubTreq(app.resource()), hub
    done(store.stop())


def sig(key: str = KEY, exp_in: float = 3600) -> str:
    return jwt.encode({"iss": "pushpin", "exp": int(time.time() + exp_in)}, key, algorithm="HS256")


def test_a_signed_request_gets_hold_instructions_with_the_first_event(grip_app: Any) -> None:
    stub, hub = grip_app
    resp = done(stub.get("http://x/boards/demo/", headers={
        "Accept": "text/event-stream", "Grip-Sig": sig()}))
    body = done(stub.content(resp))
    h = resp.headers
    assert resp.code == 200
    assert h.getRawHeaders("Grip-Hold") == ["stream"]
    assert h.getRawHeaders("Grip-Channel") == ["board-demo"]
    assert "timeout=20" in h.getRawHeaders("Grip-Keep-Alive")[0]
    assert h.getRawHeaders("Content-Type") == ["text/event-stream"]
    assert body.startswith(b"event: update\nid: ")
    data = json.loads(body.split(b"data: ", 1)[1])
    assert data["id"] == "demo" and len(data["players"]) == 5
    assert len(hub) == 0  # the proxy holds the stream, not this process


@pytest.mark.parametrize("bad", [sig("the-wrong-key-entirely-but-also-long"), sig(exp_in=-60),
                                 "not-a-jwt"])
def test_a_forged_or_expired_signature_is_not_grip(grip_app: Any, bad: str) -> None:
    stub, hub = grip_app
    d = stub.get("http://x/boards/demo/", headers={"Accept": "text/event-stream", "Grip-Sig": bad})
    # A native stream never finishes, so the stub's response stays open: the request was
    # taken as a direct client and now sits in the hub.
    assert len(hub) == 1
    d.cancel()


def test_unknown_board_stream_is_a_404_not_a_stream(grip_app: Any) -> None:
    stub, hub = grip_app
    resp = done(stub.get("http://x/boards/nope/", headers={"Accept": "text/event-stream"}))
    assert resp.code == 404
    assert json.loads(done(stub.content(resp)))["error"]["code"] == "not_found"
    assert len(hub) == 0


def test_too_many_streams_is_a_503_with_retry_after(grip_app: Any) -> None:
    stub, hub = grip_app
    hub.max_streams = 0
    resp = done(stub.get("http://x/boards/demo/", headers={"Accept": "text/event-stream"}))
    assert resp.code == 503
    assert resp.headers.getRawHeaders("Retry-After") == ["5"]
    assert json.loads(done(stub.content(resp)))["error"]["code"] == "too_many_streams"




def test_streams_start_from_the_feeds_event_without_a_store_read() -> None:
    class NoReads:
        def board_view(self, board_id: str, limit: int) -> Any:
            raise AssertionError("a store read")

    known = event(77)
    hub = SseHub(Clock())
    proxies = parse_grip_urls(f"http://127.0.0.1:5561/?verify-key={KEY}")
    streams = BoardStreams(NoReads(), hub, 5, 20, proxies,  # type: ignore[arg-type]
                           latest=lambda board: known if board == "demo" else None)
    stub = StubTreq(build_app(AppContext(store=NoReads(), clock=Clock(),  # type: ignore[arg-type]
                                         streams=streams)).resource())
    resp = done(stub.get("http://x/boards/demo/", headers={
        "Accept": "text/event-stream", "Grip-Sig": sig()}))
    assert resp.headers.getRawHeaders("Grip-Hold") == ["stream"]
    assert done(stub.content(resp)) == known.encoded
    d = stub.get("http://x/boards/demo/", headers={"Accept": "text/event-stream"})
    assert len(hub) == 1 and hub.latest("demo") == known  # native, started from it too
    d.cancel()
