# -*- test-case-name: tests.test_grip -*-
"""Unit tests for GRIP_URL parsing, Grip-Sig checks, hold headers and the GRIP publisher."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Request

from leaderboard.feed.grip import (
    GripProxy,
    GripPublisher,
    any_verify_key,
    channel_for_board,
    grip_request_verified,
    hold_stream_headers,
    parse_grip_urls,
    publish_body,
)

KEY = "k" * 40
REALM_KEY = b"\x01\x02realm-key-of-32-bytes-or-more\xff\xfe"


def b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return "base64:" + base64.b64encode(raw).decode()


def sign(key: bytes | str, iss: str = "pushpin", exp_in: float = 3600) -> bytes:
    token = jwt.encode({"iss": iss, "exp": int(time.time() + exp_in)}, key, algorithm="HS256")
    return token.encode()


# -- parse_grip_urls -------------------------------------------------------------------------


def test_parse_local_pushpin() -> None:
    [proxy] = parse_grip_urls("http://localhost:5561")
    assert proxy == GripProxy(control_uri="http://localhost:5561")
    assert proxy.publish_url == "http://localhost:5561/publish/"
    assert proxy.authorization(0) is None


def test_parse_fanout_realm() -> None:
    [proxy] = parse_grip_urls(f"https://api.fanout.io/realm/abc123?iss=abc123&key={b64(REALM_KEY)}")
    assert proxy.control_uri == "https://api.fanout.io/realm/abc123"
    assert proxy.publish_url == "https://api.fanout.io/realm/abc123/publish/"
    assert proxy.control_iss == "abc123"
    assert proxy.key == REALM_KEY
    assert proxy.verify_key is None


def test_parse_several_with_verify_key() -> None:
    value = (
        f" http://127.0.0.1:5561/?verify-iss=pushpin&verify-key={b64(KEY)} ,"
        f"https://api.fanout.io/realm/r?iss=r&key={b64(REALM_KEY)}"
    )
    local, fanout = parse_grip_urls(value)
    assert local.control_uri == "http://127.0.0.1:5561"
    assert local.verify_key == KEY.encode()
    assert local.verify_iss == "pushpin"
    assert fanout.control_iss == "r"


def test_parse_keeps_other_query_and_strips_credentials() -> None:
    [proxy] = parse_grip_urls("https://user:p%40ss@grip.example.com/base/?tenant=7")
    assert proxy.control_uri == "https://grip.example.com/base?tenant=7"
    assert proxy.publish_url == "https://grip.example.com/base/publish/?tenant=7"
    assert proxy.username == "user"
    assert proxy.password == "p@ss"
    assert proxy.authorization(0) == b"Basic " + base64.b64encode(b"user:p@ss")


def test_repr_hides_secrets() -> None:
    [proxy] = parse_grip_urls(
        f"https://u:hunter2@h/realm/r?iss=r&key={b64(REALM_KEY)}&verify-key=vk"
    )
    text = repr(proxy)
    assert "hunter2" not in text
    assert "realm-key" not in text
    assert "vk" not in text.replace("verify_iss", "")


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://a:1,,http://b:2", "empty entry"),
        ("localhost:5561", "scheme"),
        ("ftp://localhost:5561", "scheme"),
        ("http://", "no host"),
        ("http://localhost:notaport", "bad port"),
        ("http://localhost:5561?iss=r&key=base64:abc", "Incorrect padding"),
    ],
)
def test_parse_rejects_bad_urls(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_grip_urls(value)
    assert "base64:abc" not in str(info.value)


def test_jwt_authorization_for_realm() -> None:
    [proxy] = parse_grip_urls(f"https://api.fanout.io/realm/r?iss=r&key={b64(REALM_KEY)}")
    header = proxy.authorization(1_000_000.5)
    assert header is not None and header.startswith(b"Bearer ")
    claim = jwt.decode(header[7:], REALM_KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert claim == {"iss": "r", "exp": 1_000_000 + 3600}


def test_key_without_iss_is_bearer_token() -> None:
    [proxy] = parse_grip_urls("http://localhost:5561?key=s3cret")
    assert proxy.authorization(0) == b"Bearer s3cret"


# -- ingress ---------------------------------------------------------------------------------


def test_without_verify_key_header_presence_counts() -> None:
    proxies = parse_grip_urls("http://localhost:5561")
    assert not any_verify_key(proxies)
    assert grip_request_verified(b"anything", proxies)
    assert not grip_request_verified(None, proxies)
    assert not grip_request_verified(b"", proxies)


def test_verify_key_accepts_good_signature() -> None:
    proxies = parse_grip_urls(f"http://localhost:5561?verify-iss=pushpin&verify-key={b64(KEY)}")
    assert any_verify_key(proxies)
    assert grip_request_verified(sign(KEY), proxies)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(sign("f" * 40), id="forged"),
        pytest.param(sign(KEY, exp_in=-10), id="expired"),
        pytest.param(sign(KEY, iss="someone-else"), id="wrong-iss"),
        pytest.param(b"not.a.jwt", id="garbage"),
        pytest.param(b"\xff\xfe", id="not-ascii"),
        pytest.param(None, id="missing"),
    ],
)
def test_verify_key_rejects(token: bytes | None) -> None:
    proxies = parse_grip_urls(f"http://localhost:5561?verify-iss=pushpin&verify-key={b64(KEY)}")
    assert not grip_request_verified(token, proxies)


def test_unexpiring_token_is_rejected() -> None:
    proxies = parse_grip_urls(f"http://localhost:5561?verify-key={b64(KEY)}")
    token = jwt.encode({"iss": "pushpin"}, KEY, algorithm="HS256").encode()
    assert not grip_request_verified(token, proxies)


def test_any_keyed_proxy_may_sign() -> None:
    proxies = parse_grip_urls(
        f"http://a:1?verify-key={b64(KEY)}, http://b:2?verify-key={b64('other' * 8)}, http://c:3"
    )
    assert grip_request_verified(sign("other" * 8), proxies)
    assert grip_request_verified(sign(KEY), proxies)
    assert not grip_request_verified(sign("z" * 40), proxies)


# -- hold headers, channels, body --------------------------------------------------------------


def test_hold_stream_headers() -> None:
    assert hold_stream_headers("board-demo", 15) == {
        b"Grip-Hold": b"stream",
        b"Grip-Channel": b"board-demo",
        b"Grip-Keep-Alive": b": keep-alive\\n\\n; format=cstring; timeout=15",
    }
    with pytest.raises(ValueError):
        hold_stream_headers("board-demo", 0)


def test_channel_for_board() -> None:
    assert channel_for_board("demo") == "board-demo"


def test_publish_body_text_and_binary() -> None:
    body = json.loads(publish_body("board-x", b"event: update\ndata: {}\n\n", "e2", "e1"))
    assert body == {
        "items": [
            {
                "channel": "board-x",
                "id": "e2",
                "prev-id": "e1",
                "http-stream": {"content": "event: update\ndata: {}\n\n"},
            }
        ]
    }
    body = json.loads(publish_body("c", b"\xff\x00", "e3", None))
    assert body["items"][0] == {
        "channel": "c",
        "id": "e3",
        "http-stream": {"content-bin": base64.b64encode(b"\xff\x00").decode()},
    }


# -- publisher: in-memory HTTP through treq ------------------------------------------------------


class RecordingResource(Resource):
    isLeaf = True

    def __init__(self, code: int = 200) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.code = code
        self.requests: list[tuple[bytes, bytes, bytes | None, Any]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.requests.append(
            (
                request.getRequestHostname() + request.uri,  # type: ignore[no-untyped-call]
                request.getHeader(b"content-type") or b"",
                request.getHeader(b"authorization"),
                json.loads(request.content.read()),
            )
        )
        request.setResponseCode(self.code)
        return b"Published\n"


def test_publisher_posts_once_per_proxy_with_auth() -> None:
    clock = Clock()
    clock.advance(2_000_000)
    resource = RecordingResource()
    proxies = parse_grip_urls(
        f"http://local:5561, https://fanout/realm/r?iss=r&key={b64(REALM_KEY)}"
    )
    publisher = GripPublisher(proxies, clock, StubTreq(resource))  # type: ignore[no-untyped-call]
    done = publisher.publish("board-demo", b"data: 1\n\n", "e1")
    assert done.called
    assert publisher.published == 2 and publisher.failed == 0
    (url1, type1, auth1, body1), (url2, _, auth2, body2) = resource.requests
    assert (url1, type1, auth1) == (b"local/publish/", b"application/json", None)
    assert url2 == b"fanout/realm/r/publish/"
    assert auth2 is not None
    claim = jwt.decode(auth2[7:], REALM_KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert claim == {"iss": "r", "exp": 2_000_000 + 3600}
    expected = {"channel": "board-demo", "id": "e1", "http-stream": {"content": "data: 1\n\n"}}
    assert body1 == body2 == {"items": [expected]}


def test_publisher_drops_rejected_request_without_retry() -> None:
    clock = Clock()
    resource = RecordingResource(code=400)
    publisher = GripPublisher(parse_grip_urls("http://local:5561"), clock, StubTreq(resource))  # type: ignore[no-untyped-call]
    publisher.publish("c", b"x", "e1")
    assert (publisher.published, publisher.failed, publisher.dropped) == (0, 1, 1)
    assert clock.getDelayedCalls() == []


# -- publisher: controlled HTTP and time ---------------------------------------------------------


@dataclass
class FakeResponse:
    code: int
    body: bytes = b"ok"

    def content(self) -> Deferred[bytes]:
        return succeed(self.body)


@dataclass
class Call:
    url: str
    body: dict[str, Any]
    headers: dict[bytes, list[bytes]]
    result: Deferred[FakeResponse]
    cancelled: list[bool] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return str(self.body["items"][0]["id"])

    @property
    def prev_id(self) -> str | None:
        prev_id: str | None = self.body["items"][0].get("prev-id")
        return prev_id

    def answer(self, code: int = 200) -> None:
        self.result.callback(FakeResponse(code))

    def refuse(self) -> None:
        self.result.errback(ConnectionRefusedError())  # type: ignore[no-untyped-call]


class FakeHTTP:
    """Records each POST and lets the test decide when and how it is answered."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def post(
        self, url: str, *, data: bytes, headers: dict[bytes, list[bytes]], **kw: Any
    ) -> Deferred[FakeResponse]:
        cancelled: list[bool] = []
        result: Deferred[FakeResponse] = Deferred(lambda d: cancelled.append(True))
        self.calls.append(Call(url, json.loads(data), headers, result, cancelled))
        return result

    def to(self, host: str) -> list[Call]:
        return [call for call in self.calls if f"//{host}:" in call.url]


def make_publisher(hosts: str = "a", **options: Any) -> tuple[GripPublisher, FakeHTTP, Clock]:
    clock = Clock()
    http = FakeHTTP()
    urls = ",".join(f"http://{host}:5561" for host in hosts)
    publisher = GripPublisher(parse_grip_urls(urls), clock, http, **options)
    return publisher, http, clock


def test_retry_backs_off_exponentially_up_to_cap() -> None:
    publisher, http, clock = make_publisher(retry_initial=0.5, retry_max=3.0)
    done = publisher.publish("c", b"x", "e1")
    assert not done.called
    http.calls[-1].refuse()
    assert done.called
    delays = []
    for _attempt in range(5):
        before = len(http.calls)
        [call] = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1] - 0.001)
        assert len(http.calls) == before
        clock.advance(0.001)
        assert len(http.calls) == before + 1
        assert http.calls[-1].event_id == "e1"
        http.calls[-1].answer(503)
    assert delays == pytest.approx([0.5, 1.0, 2.0, 3.0, 3.0])
    assert publisher.failed == 6 and publisher.published == 0
    clock.advance(3.0)
    http.calls[-1].answer(200)
    assert publisher.published == 1
    assert clock.getDelayedCalls() == []
    # Success resets the back-off: the next failure waits the initial delay again.
    publisher.publish("c", b"y", "e2")
    http.calls[-1].refuse()
    [call] = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 0.5


def test_request_timeout_counts_as_failure() -> None:
    publisher, http, clock = make_publisher(timeout=5.0)
    done = publisher.publish("c", b"x", "e1")
    clock.advance(4.9)
    assert not done.called
    clock.advance(0.1)
    assert done.called
    assert http.calls[0].cancelled == [True]
    assert publisher.failed == 1
    clock.advance(0.5)
    assert len(http.calls) == 2


def test_newer_event_supersedes_pending_one() -> None:
    publisher, http, _clock = make_publisher()
    first = publisher.publish("c", b"1", "e1")
    second = publisher.publish("c", b"2", "e2", prev_id="e1")
    third = publisher.publish("c", b"3", "e3", prev_id="e2")
    assert len(http.calls) == 1
    assert second.called and not first.called and not third.called
    assert publisher.superseded == 1
    http.calls[0].answer()
    assert first.called
    [_, latest] = http.calls
    assert latest.event_id == "e3"
    assert latest.prev_id == "e1"  # e2 never went out: chain from what was delivered
    latest.answer()
    assert third.called
    assert publisher.published == 2


def test_latest_state_is_sent_after_failure() -> None:
    publisher, http, clock = make_publisher()
    publisher.publish("c", b"1", "e1")
    http.calls[0].refuse()
    publisher.publish("c", b"2", "e2", prev_id="e1")
    publisher.publish("c", b"3", "e3", prev_id="e2")
    assert len(http.calls) == 1  # waits for the back-off, does not hammer a failing proxy
    clock.advance(0.5)
    [_, retry] = http.calls
    assert retry.event_id == "e3"
    assert retry.body["items"][0]["http-stream"] == {"content": "3"}
    assert retry.prev_id == "e2"  # nothing delivered yet on this lane: the caller's prev_id
    retry.answer()
    assert publisher.superseded == 2
    assert clock.getDelayedCalls() == []


def test_channels_do_not_supersede_each_other() -> None:
    publisher, http, _clock = make_publisher()
    publisher.publish("board-a", b"a", "a1")
    publisher.publish("board-b", b"b", "b1")
    assert [call.body["items"][0]["channel"] for call in http.calls] == ["board-a", "board-b"]


def test_slow_proxy_does_not_hold_back_others() -> None:
    publisher, http, clock = make_publisher(hosts="ab", timeout=30.0)
    publisher.publish("c", b"1", "e1")
    http.to("b")[0].answer()
    publisher.publish("c", b"2", "e2", prev_id="e1")
    http.to("b")[1].answer()
    publisher.publish("c", b"3", "e3", prev_id="e2")
    http.to("b")[2].answer()
    assert [call.event_id for call in http.to("b")] == ["e1", "e2", "e3"]
    assert [call.event_id for call in http.to("a")] == ["e1"]
    http.to("a")[0].refuse()
    clock.advance(0.5)
    assert [call.event_id for call in http.to("a")] == ["e1", "e3"]
    assert http.to("a")[1].prev_id == "e2"


def test_stop_cancels_timers_and_requests() -> None:
    publisher, http, clock = make_publisher()
    publisher.publish("c", b"1", "e1")
    http.calls[0].refuse()
    pending = publisher.publish("c", b"2", "e2")
    in_flight = publisher.publish("d", b"1", "d1")
    assert len(clock.getDelayedCalls()) == 2  # the retry and the request timeout
    stopped = publisher.stop()
    assert stopped.called
    assert clock.getDelayedCalls() == []
    assert http.calls[-1].cancelled == [True]
    assert pending.called and in_flight.called
    later = publisher.publish("c", b"3", "e3")
    assert later.called
    assert len(http.calls) == 2
    assert publisher.dropped == 2
