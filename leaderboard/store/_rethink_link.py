# -*- test-case-name: tests.test_rethink_store -*-
"""A RethinkDB driver connection (Twisted mode) that notices a lost transport and reconnects.

The driver never notices a lost connection by itself (a pending query or ``cursor.next()``
then waits forever), leaves its handshake timer armed after a failed handshake, and floods
``DeprecationWarning``s from ``returnValue``. L{Link} works around all three: it observes the
protocol's ``connectionLost``, closes the driver's connection instance to fail every waiter,
fails new calls fast with L{StoreUnavailable} while it reconnects with back-off on an
injected clock, and guards every wait with a timeout that never cancels a driver Deferred.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rethinkdb.errors import (  # type: ignore[import-untyped]
    ReqlAvailabilityError,
    ReqlDriverError,
    ReqlError,
    ReqlOpFailedError,
)
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from leaderboard.errors import StoreUnavailable

T = TypeVar("T")

log = Logger()


def quiet_driver_warnings() -> None:
    """Ignore the driver's ``returnValue`` DeprecationWarnings (thousands per run), only those.

    ``warnings.filterwarnings`` replaces an identical filter instead of adding a second one,
    so calling this more than once is harmless.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"twisted\.internet\.defer\.returnValue was deprecated",
        category=DeprecationWarning,
        module=r"rethinkdb(\..*)?\Z",
    )


def reql_message(e: BaseException | None) -> str:
    """An error's message; ``str()`` on some driver errors raises AttributeError."""
    message = getattr(e, "message", None)
    if isinstance(message, str) and message:
        return message
    try:
        return str(e) or e.__class__.__name__
    except Exception:  # the driver's QueryPrinter can fail on term-less errors
        return e.__class__.__name__


class QueryTimeout(StoreUnavailable):
    """The database did not answer in time."""


def within(d: Deferred[T], seconds: float | None, clock: IReactorTime, what: str) -> Deferred[T]:
    """A Deferred with ``d``'s result, or a L{QueryTimeout} after ``seconds``.

    ``d`` itself is never cancelled: cancelling some driver Deferreds (``fetch_next()``, a
    pending query) makes the driver drop the whole connection later. A result that arrives
    after the timeout is dropped, a late failure is consumed.
    """
    result: Deferred[T] = Deferred()
    timer: IDelayedCall | None = None
    if seconds is not None:

        def expire() -> None:
            if not result.called:
                message = f"the database did not answer {what} within {seconds:g}s"
                result.errback(QueryTimeout(message))

        timer = clock.callLater(seconds, expire)

    def settle(outcome: object) -> None:
        if timer is not None and timer.active():
            timer.cancel()
        if not result.called:
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)  # type: ignore[arg-type]
        # Otherwise the caller has moved on (timed out or cancelled); drop the outcome.

    d.addBoth(settle)
    return result


def unavailable(e: BaseException | None) -> StoreUnavailable | None:
    """The L{StoreUnavailable} a driver error means, or None for a query's own error."""
    if isinstance(e, StoreUnavailable):
        return e
    if isinstance(e, ReqlDriverError):  # lost or closed connection, timeouts, auth
        return StoreUnavailable(f"database connection failed: {reql_message(e)}")
    if isinstance(e, ReqlAvailabilityError):
        message = reql_message(e)
        if "already exists" in message:
            return None
        return StoreUnavailable(f"database unavailable: {message}")
    return None


class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum``, each jittered by +-20%."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rand = rand
        self.attempts = 0

    def next(self) -> float:
        base = min(self.maximum, self.initial * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return float(base * (0.8 + 0.4 * self._rand()))

    def reset(self) -> None:
        self.attempts = 0


def observed_connection_class() -> type:
    """The driver's Twisted connection class, with a transport-loss hook and a tidy handshake.

    Built on first use: importing the driver's Twisted module imports the global reactor,
    which must not happen before twistd or pytest installs the reactor they want.
    """
    from rethinkdb.net import Connection as ConnectionBase  # type: ignore[import-untyped]
    from rethinkdb.twisted_net import net_twisted  # type: ignore[import-untyped]

    def disarm(proto: Any) -> None:
        timer = getattr(proto, "_timeout_defer", None)
        if timer is not None and timer.active():
            timer.cancel()

    class ObservedInstance(net_twisted.ConnectionInstance):  # type: ignore[misc]
        protocol: Any = None

        def _connectTimeout(self, factory: Any, timeout: Any) -> Any:
            return super()._connectTimeout(factory, timeout).addCallback(self._observe)

        def _observe(self, proto: Any) -> Any:
            self.protocol = proto
            original = proto.connectionLost
            parent = self._parent

            def connectionLost(reason: Failure) -> None:
                original(reason)
                disarm(proto)
                if not proto.wait_for_handshake.called:
                    proto.wait_for_handshake.errback(ConnectionLost("lost during the handshake"))
                callback = getattr(parent, "on_lost", None)
                if callback is not None:
                    callback(reason)

            proto.connectionLost = connectionLost
            if getattr(parent, "aborted", None) is self:  # given up on while TCP connected
                proto.transport.abortConnection()
            return proto

        def connect(self, timeout: Any) -> Any:
            def failed(f: Failure) -> Failure:
                proto = self.protocol
                if proto is not None:
                    disarm(proto)  # README bug 2: the driver leaves it armed.
                    if proto.transport is not None:
                        proto.transport.abortConnection()
                return f

            return super().connect(timeout).addErrback(failed)

    class ObservedConnection(net_twisted.Connection):  # type: ignore[misc]
        on_lost: Callable[[Failure], None] | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            ConnectionBase.__init__(self, ObservedInstance, *args, **kwargs)

        aborted: Any = None

        def abort(self) -> None:
            """Fail every pending query and cursor now, and drop the transport (also one
            that a handshake still in progress opens later)."""
            self.on_lost = None
            instance = self._instance
            if instance is not None:
                self.aborted = instance
                # noreply_wait=False: nothing is sent; waiters fail with "Connection is closed".
                self.close(noreply_wait=False).addErrback(lambda f: None)
            proto = getattr(self.aborted, "protocol", None)
            if proto is not None and proto.transport is not None:
                proto.transport.abortConnection()

    return ObservedConnection


class Link:
    """One driver connection, kept open: reconnects with back-off, fails fast while down.

    ``on_up(conn)`` runs on every new connection before it is used (schema, subscriptions),
    ``on_connected()`` once it is in use, and ``on_down()`` when an established one is lost.
    """

    def __init__(
        self,
        name: str,
        connect_kwargs: dict[str, Any],
        clock: IReactorTime,
        *,
        on_up: Callable[[Any], Awaitable[None]],
        on_down: Callable[[], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        connect_timeout: float = 5.0,
        query_timeout: float = 10.0,
        heartbeat: float | None = 15.0,
        backoff: Backoff | None = None,
        describe: str = "",
    ) -> None:
        self.name = name
        self._connect_kwargs = connect_kwargs
        self._clock = clock
        self._on_up = on_up
        self._on_down = on_down
        self._on_connected = on_connected
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        self._heartbeat = heartbeat
        self._backoff = backoff or Backoff()
        self._describe = describe
        self._conn_class: type | None = None
        self.conn: Any = None
        self._running = False
        self._connecting: Any = None
        self._candidate: Any = None
        self._timer: IDelayedCall | None = None
        self._beat: IDelayedCall | None = None
        self.connects = 0

    @property
    def up(self) -> bool:
        return self.conn is not None and bool(self.conn.is_open())

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect once (raising L{StoreUnavailable} on failure), then stay connected."""
        self._running = True
        self._backoff.reset()
        try:
            await self._connect_once()
        except BaseException:
            self._running = False
            raise

    def stop(self) -> Deferred[None]:
        self._running = False
        for call in (self._timer, self._beat):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._beat = None
        for conn in (self.conn, self._candidate):
            if conn is not None:
                conn.abort()
        self.conn = self._candidate = None
        return Deferred.fromCoroutine(self._settle_connecting())

    async def _settle_connecting(self) -> None:
        pending = self._connecting
        if pending is not None:
            try:  # within(): cancelling stop() must not cancel the driver's Deferred
                await within(pending, None, self._clock, "the connection")
            except Exception as e:
                log.debug("connection attempt ended while stopping: {e}", e=reql_message(e))

    async def _connect_once(self) -> None:
        try:
            await self._connect_and_set_up()
        finally:
            self._candidate = None

    async def _connect_and_set_up(self) -> None:
        if self._conn_class is None:
            self._conn_class = observed_connection_class()
        k = self._connect_kwargs
        timeout = max(1, math.ceil(self.connect_timeout))
        try:
            # What r.connect() does, keeping hold of the connection so that a handshake
            # that never ends can be aborted.
            conn = self._conn_class(
                k["host"], k["port"], k.get("db"), None, k.get("user") or "admin",
                k.get("password") or None, timeout, {}, 10,
            )
            self._candidate = conn  # what stop() aborts while it is being set up
            attempt = conn.reconnect(timeout=timeout)
        except ReqlError as e:
            raise unavailable(e) or e from None
        abandoned = False

        def keep(result: Any) -> Any:
            if abandoned:  # finished after all (the TCP connect was still pending): close it
                conn.abort()
            return result

        attempt.addCallback(keep)
        self._connecting = attempt
        try:
            await within(attempt, self.connect_timeout, self._clock, "the connection")
        except BaseException as e:
            abandoned = True
            conn.abort()  # fails a pending handshake; within() has let go of the attempt
            raise unavailable(e) or e from None
        finally:
            self._connecting = None
        if not self._running:
            conn.abort()
            raise StoreUnavailable("the store is stopping")
        conn.on_lost = lambda reason: self.lost(conn, "the connection was lost")
        try:
            await self._on_up(conn)
        except BaseException as e:
            conn.abort()
            raise unavailable(e) or e from None
        if not self._running:
            conn.abort()
            raise StoreUnavailable("the store is stopping")
        if not conn.is_open():
            raise StoreUnavailable("the connection was lost while it was set up")
        self.conn = conn
        self.connects += 1
        self._backoff.reset()
        self._schedule_heartbeat()
        log.info("RethinkDB {link} connection up ({where})", link=self.name, where=self._describe)
        if self._on_connected is not None:
            self._on_connected()

    def lost(self, conn: Any, why: str) -> None:
        """``conn`` is unusable: fail everything waiting on it, then reconnect."""
        if conn is None:
            return
        if conn is not self.conn:
            conn.abort()
            return
        self.conn = None
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
        if self._running:
            log.warn("RethinkDB {link} connection down: {why}", link=self.name, why=why)
            if self._on_down is not None:
                self._on_down()
            self._schedule_reconnect()
        # Last: aborting fails the waiters at once, and their callbacks may call back into
        # the store, which must already see the link down with a reconnect scheduled.
        conn.abort()

    def _schedule_reconnect(self) -> None:
        if not self._running or (self._timer is not None and self._timer.active()):
            return
        self._timer = self._clock.callLater(self._backoff.next(), self._reconnect)

    def _reconnect(self) -> None:
        self._timer = None
        if not self._running or self.conn is not None:
            return

        def failed(f: Failure) -> None:
            if not self._running:
                return
            log.warn("RethinkDB {link} reconnect failed ({reason}); retrying",
                     link=self.name, reason=reql_message(f.value))
            self._schedule_reconnect()

        Deferred.fromCoroutine(self._connect_once()).addErrback(failed)

    def _schedule_heartbeat(self) -> None:
        if self._heartbeat is not None and self._running:
            self._beat = self._clock.callLater(self._heartbeat, self._beat_once)

    def _beat_once(self) -> None:
        """A SERVER_INFO round trip: finds a half-open connection no RST will ever report."""
        self._beat = None
        conn = self.conn
        if conn is None:
            return

        def ok(_: object) -> None:
            if conn is self.conn:
                self._schedule_heartbeat()

        def failed(f: Failure) -> None:
            self.lost(conn, f"heartbeat failed: {reql_message(f.value)}")

        beat = within(conn.server(), self.query_timeout, self._clock, "a heartbeat")
        beat.addCallbacks(ok, failed)

    # -- queries --------------------------------------------------------------------------

    def run(self, query: Any, timeout: float | None = None) -> Deferred[Any]:
        """Run a ReQL term on the live connection; fails fast when there is none."""
        conn = self.conn
        if conn is None or not conn.is_open():
            return fail(StoreUnavailable("the database is unreachable; reconnecting"))
        try:
            d = query.run(conn)
        except ReqlError as e:
            return fail(unavailable(e) or e)
        return self.guard(conn, d, timeout, "a query")

    def guard(self, conn: Any, d: Deferred[T], timeout: float | None, what: str) -> Deferred[T]:
        """``d`` bounded by the query timeout, with connection failures as L{StoreUnavailable}.

        A timeout means the connection is no longer trusted: it is dropped and reopened.
        """

        def translate(f: Failure) -> Failure:
            if f.check(QueryTimeout):
                self.lost(conn, reql_message(f.value))
            elif f.check(ReqlOpFailedError) and "does not exist" in reql_message(f.value):
                # The database or a table was dropped under us: reconnecting bootstraps.
                self.lost(conn, reql_message(f.value))
            mapped = unavailable(f.value)
            if mapped is not None and mapped is not f.value:
                return Failure(mapped)
            return f

        seconds = self.query_timeout if timeout is None else timeout
        return within(d, seconds, self._clock, what).addErrback(translate)
