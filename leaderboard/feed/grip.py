# -*- test-case-name: tests.test_grip -*-
"""GRIP support: parse ``GRIP_URL``, publish events to proxies with treq, and check GRIP ingress."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import jwt
from gripcontrol import (  # type: ignore[import-untyped]
    HttpStreamFormat,
    create_grip_channel_header,
    parse_grip_uri,
    validate_sig,
)
from pubcontrol import Item  # type: ignore[import-untyped]
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

__all__ = [
    "GripProxy",
    "GripPublisher",
    "any_verify_key",
    "channel_for_board",
    "grip_request_verified",
    "hold_stream_headers",
    "parse_grip_urls",
]

log = Logger()

_JWT_LIFETIME = 3600
"""Seconds a publish JWT stays valid (pubcontrol uses the same hour)."""

_RETRYABLE_4XX = frozenset({408, 425, 429})
"""Client-error statuses worth retrying; any other 4xx means the request itself is wrong."""


# -- GRIP_URL --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GripProxy:
    """One GRIP proxy's control endpoint and credentials, parsed from a ``GRIP_URL`` entry.

    ``key`` signs publish requests: with ``control_iss`` it is a JWT key (Fanout Cloud),
    without it a bearer token (as pubcontrol does). ``verify_key`` / ``verify_iss`` check the
    ``Grip-Sig`` the proxy adds to proxied requests. Secrets are left out of ``repr``.
    """

    control_uri: str
    control_iss: str | None = None
    key: bytes | str | None = field(default=None, repr=False)
    verify_key: bytes | str | None = field(default=None, repr=False)
    verify_iss: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def publish_url(self) -> str:
        """``{control_uri}/publish/``, keeping any query string after the path."""
        parts = urlsplit(self.control_uri)
        path = parts.path.rstrip("/") + "/publish/"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    def authorization(self, now: float) -> bytes | None:
        """The ``Authorization`` header value for a publish at time ``now``, if any.

        Never log the result: it is a credential.
        """
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return b"Basic " + base64.b64encode(pair)
        if self.key is None:
            return None
        if self.control_iss is None:
            token = self.key if isinstance(self.key, str) else self.key.decode("utf-8")
            return b"Bearer " + token.encode("utf-8")
        claim = {"iss": self.control_iss, "exp": int(now) + _JWT_LIFETIME}
        return b"Bearer " + jwt.encode(claim, self.key, algorithm="HS256").encode("ascii")


def _parse_one(uri: str) -> GripProxy:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"GRIP_URL entry {_redact(uri)!r}: scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"GRIP_URL entry {_redact(uri)!r}: no host")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"GRIP_URL entry {_redact(uri)!r}: bad port") from None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    try:
        config: dict[str, Any] = parse_grip_uri(bare)
    except (ValueError, TypeError) as e:  # binascii.Error is a ValueError
        raise ValueError(f"GRIP_URL entry {_redact(uri)!r}: {e}") from None
    return GripProxy(
        control_uri=config["control_uri"],
        control_iss=config.get("control_iss"),
        key=config.get("key"),
        verify_key=config.get("verify_key"),
        verify_iss=config.get("verify_iss"),
        username=username,
        password=password,
    )


def _redact(uri: str) -> str:
    """``uri`` with its query string and password replaced, for error messages."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def parse_grip_urls(value: str) -> list[GripProxy]:
    """Parse ``GRIP_URL``: one or more GRIP control URIs separated by commas.

    Each entry is what ``gripcontrol.parse_grip_uri`` accepts, e.g. ``http://localhost:5561``
    (Pushpin) or ``https://api.fanout.io/realm/ID?iss=ID&key=base64:...`` (Fanout Cloud),
    optionally with ``verify-key`` / ``verify-iss`` to check ``Grip-Sig``, and
    ``user:password@`` for Basic auth. Raises ``ValueError`` naming the bad entry (with its
    secrets hidden).
    """
    entries = [entry.strip() for entry in value.split(",")]
    if not any(entries):
        raise ValueError("GRIP_URL is empty")
    if not all(entries):
        raise ValueError("GRIP_URL has an empty entry (stray comma?)")
    return [_parse_one(entry) for entry in entries]


# -- ingress ---------------------------------------------------------------------------------


def any_verify_key(proxies: list[GripProxy]) -> bool:
    """True if some proxy has a ``verify-key``, so ``Grip-Sig`` is checked cryptographically.

    When False, any request carrying a ``Grip-Sig`` header is taken to come through a GRIP
    proxy: the caller should log a warning at start-up.
    """
    return any(proxy.verify_key for proxy in proxies)


def grip_request_verified(sig_header: bytes | None, proxies: list[GripProxy]) -> bool:
    """Whether a request with this ``Grip-Sig`` header value came through one of ``proxies``.

    With verify keys configured, the header must be a valid, unexpired JWT signed by one of
    them (with the matching issuer when ``verify-iss`` is set). Without any, the header's
    presence is enough.
    """
    if not sig_header:
        return False
    keyed = [proxy for proxy in proxies if proxy.verify_key]
    if not keyed:
        return True
    try:
        token = sig_header.decode("ascii")
    except UnicodeDecodeError:
        return False
    return any(bool(validate_sig(token, proxy.verify_key, proxy.verify_iss)) for proxy in keyed)


def channel_for_board(board_id: str) -> str:
    """The GRIP channel a board's events are published on: ``board-<id>``.

    Board ids are URL path segments; the prefix keeps room for other channel kinds later.
    Channel names are plain strings to Pushpin and Fanout, so any id works unchanged.
    """
    return f"board-{board_id}"


def hold_stream_headers(channel: str, keepalive_seconds: int) -> dict[bytes, bytes]:
    """Response headers that make a GRIP proxy hold the response open as a stream.

    The proxy subscribes the client to ``channel`` and sends an SSE comment
    (``: keep-alive``) after ``keepalive_seconds`` without data.
    """
    if keepalive_seconds < 1:
        raise ValueError("keepalive_seconds must be at least 1")
    keep_alive = f": keep-alive\\n\\n; format=cstring; timeout={keepalive_seconds}"
    return {
        b"Grip-Hold": b"stream",
        b"Grip-Channel": create_grip_channel_header(channel).encode("utf-8"),
        b"Grip-Keep-Alive": keep_alive.encode("ascii"),
    }


# -- publishing ------------------------------------------------------------------------------


class _Response(Protocol):
    code: int

    def content(self) -> Deferred[bytes]: ...


def publish_body(channel: str, content: bytes, event_id: str, prev_id: str | None) -> bytes:
    """The JSON body of a GRIP ``/publish/`` request carrying one http-stream item."""
    item: dict[str, Any] = Item(HttpStreamFormat(content), id=event_id, prev_id=prev_id).export()
    item["channel"] = channel
    return json.dumps({"items": [item]}, separators=(",", ":")).encode("utf-8")


class _PublishFailed(Exception):
    def __init__(self, status: int, retry: bool) -> None:
        super().__init__(status)
        self.status = status
        self.retry = retry


@dataclass
class _Pending:
    content: bytes
    event_id: str
    prev_id: str | None
    waiters: list[Deferred[None]] = field(default_factory=list)


@dataclass
class _Lane:
    """Publish state of one channel on one proxy: at most one request in flight."""

    proxy: GripProxy
    channel: str
    pending: _Pending | None = None
    in_flight: Deferred[None] | None = None
    retry_call: IDelayedCall | None = None
    failures: int = 0
    last_sent_id: str | None = None


class GripPublisher:
    """Publishes board events to every configured GRIP proxy, each on its own.

    Each (proxy, channel) pair is a lane with at most one request in flight. A publish that
    arrives while the lane is busy (or backing off after a failure) waits as the lane's
    *pending* event; a newer event on the same channel replaces it, so memory stays bounded
    and the last state is always the one delivered. Failed requests (connection errors,
    timeouts, 5xx, 408/425/429) are retried after ``retry_initial`` seconds, doubling up to
    ``retry_max``; other 4xx answers are counted and dropped.

    ``http`` is a treq ``HTTPClient`` (or ``treq.testing.StubTreq``), or an ``IAgent`` to
    wrap in one; by default a client with its own persistent connection pool.

    ``prev_id``: when the caller gives one, the publisher sends the id of the last event this
    lane actually delivered instead (when it has one), so superseded events never leave the
    proxy waiting for an id it will not see.

    Counters: ``published`` (2xx answers), ``failed`` (failed attempts), ``superseded``
    (events replaced before being sent), ``dropped`` (events given up on).
    """

    def __init__(
        self,
        proxies: list[GripProxy],
        reactor: IReactorTime,
        http: Any = None,
        *,
        timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self._proxies = list(proxies)
        self._reactor = reactor
        self._pool: Any = None
        self._http: Any = self._make_client(reactor, http)
        self._timeout = timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._lanes: dict[tuple[int, str], _Lane] = {}
        self._stopped = False
        self.published = 0
        self.failed = 0
        self.superseded = 0
        self.dropped = 0

    def _make_client(self, reactor: IReactorTime, http: Any) -> Any:
        if http is not None and hasattr(http, "post"):
            return http
        agent = http
        if agent is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
            self._pool.maxPersistentPerHost = 4
            agent = Agent(reactor, pool=self._pool)  # type: ignore[no-untyped-call]
        return HTTPClient(agent)

    @property
    def proxies(self) -> list[GripProxy]:
        return list(self._proxies)

    def publish(
        self, channel: str, content: bytes, event_id: str, prev_id: str | None = None
    ) -> Deferred[None]:
        """Send ``content`` as an http-stream item on ``channel`` to every proxy.

        The returned Deferred never fails; it fires once this event is settled on every
        proxy: delivered, failed (a retry is scheduled), superseded by a newer event, or
        dropped because the publisher stopped.
        """
        if self._stopped:
            self.dropped += len(self._proxies)
            return succeed(None)
        waiters: list[Deferred[Any]] = []
        for index, proxy in enumerate(self._proxies):
            lane = self._lanes.get((index, channel))
            if lane is None:
                lane = self._lanes[(index, channel)] = _Lane(proxy=proxy, channel=channel)
            waiter: Deferred[None] = Deferred()
            waiters.append(waiter)
            superseded, lane.pending = lane.pending, _Pending(content, event_id, prev_id, [waiter])
            if lane.in_flight is None and lane.retry_call is None:
                self._send(lane)
            if superseded is not None:
                self.superseded += 1
                self._settle(superseded)
        done: Deferred[Any] = DeferredList(waiters)
        return done.addCallback(lambda _: None)

    def stop(self) -> Deferred[None]:
        """Cancel retries and requests in flight; close the connection pool if ours."""
        self._stopped = True
        for lane in self._lanes.values():
            if lane.retry_call is not None and lane.retry_call.active():
                lane.retry_call.cancel()
            lane.retry_call = None
            if lane.pending is not None:
                self.dropped += 1
                self._settle(lane.pending)
                lane.pending = None
            if lane.in_flight is not None:
                lane.in_flight.cancel()
        self._lanes.clear()
        if self._pool is not None:
            closed: Deferred[None] = self._pool.closeCachedConnections()
            return closed
        return succeed(None)

    def _settle(self, pending: _Pending) -> None:
        waiters, pending.waiters = pending.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _send(self, lane: _Lane) -> None:
        pending = lane.pending
        assert pending is not None and lane.in_flight is None
        lane.pending = None
        prev_id = pending.prev_id
        if prev_id is not None and lane.last_sent_id is not None:
            prev_id = lane.last_sent_id
        body = publish_body(lane.channel, pending.content, pending.event_id, prev_id)
        headers = {b"Content-Type": [b"application/json"]}
        auth = lane.proxy.authorization(self._reactor.seconds())
        if auth is not None:
            headers[b"Authorization"] = [auth]
        d: Deferred[Any] = self._http.post(
            lane.proxy.publish_url, data=body, headers=headers, allow_redirects=False
        )
        d.addCallback(self._check_response)
        d.addTimeout(self._timeout, self._reactor)
        lane.in_flight = d
        d.addCallbacks(
            lambda _: self._succeeded(lane, pending),
            lambda failure: self._failed(lane, pending, failure),
        )

    def _check_response(self, response: _Response) -> Deferred[None]:
        def checked(body: bytes) -> None:
            if not 200 <= response.code < 300:
                retry = response.code >= 500 or response.code in _RETRYABLE_4XX
                log.warn(
                    "GRIP publish answered {status}: {body}",
                    status=response.code,
                    body=body[:200].decode("utf-8", "replace"),
                )
                raise _PublishFailed(response.code, retry)

        return response.content().addCallback(checked)

    def _succeeded(self, lane: _Lane, pending: _Pending) -> None:
        lane.in_flight = None
        lane.failures = 0
        lane.last_sent_id = pending.event_id
        self.published += 1
        log.debug(
            "published {event_id} on {channel} to {proxy}",
            event_id=pending.event_id,
            channel=lane.channel,
            proxy=lane.proxy.control_uri,
        )
        if lane.pending is not None and not self._stopped:
            self._send(lane)
        self._settle(pending)

    def _failed(self, lane: _Lane, pending: _Pending, failure: Failure) -> None:
        lane.in_flight = None
        if self._stopped:
            self._settle(pending)
            return
        self.failed += 1
        error = failure.value
        retry = not isinstance(error, _PublishFailed) or error.retry
        if not retry:
            self.dropped += 1
            log.error(
                "GRIP publish of {event_id} on {channel} to {proxy} rejected: {error}",
                event_id=pending.event_id,
                channel=lane.channel,
                proxy=lane.proxy.control_uri,
                error=_describe(failure),
            )
            if lane.pending is not None:
                self._send(lane)
            self._settle(pending)
            return
        if lane.pending is None:
            lane.pending = pending
        else:
            self.superseded += 1
        lane.failures += 1
        delay = min(self._retry_initial * 2 ** (lane.failures - 1), self._retry_max)
        log.warn(
            "GRIP publish on {channel} to {proxy} failed ({error}); retry {attempt} in {delay}s",
            channel=lane.channel,
            proxy=lane.proxy.control_uri,
            error=_describe(failure),
            attempt=lane.failures,
            delay=delay,
        )
        lane.retry_call = self._reactor.callLater(delay, self._retry, lane)
        self._settle(pending)

    def _retry(self, lane: _Lane) -> None:
        lane.retry_call = None
        if lane.pending is not None and lane.in_flight is None and not self._stopped:
            self._send(lane)


def _describe(failure: Failure) -> str:
    error = failure.value
    if isinstance(error, _PublishFailed):
        return f"HTTP {error.status}"
    if isinstance(error, (TxTimeoutError, CancelledError)):
        return "timed out"
    return f"{type(error).__name__}: {error}"
