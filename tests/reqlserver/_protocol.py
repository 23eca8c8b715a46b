# -*- test-case-name: tests.test_reqlserver -*-
"""One driver connection: the V1_0 handshake, frames, queries, cursors and changefeeds."""

from __future__ import annotations

import json
import struct
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from tests.reqlserver import _datum as D
from tests.reqlserver._data import Table
from tests.reqlserver._errors import (
    CLIENT_ERROR,
    OP_FAILED,
    RUNTIME_ERROR,
    SERVER_INFO,
    SUCCESS_ATOM,
    SUCCESS_PARTIAL,
    SUCCESS_SEQUENCE,
    WAIT_COMPLETE,
    Path,
    ReqlError,
)
from tests.reqlserver._scram import AuthFailed, ScramExchange
from tests.reqlserver._terms import (
    DbVal,
    Evaluator,
    FeedVal,
    FuncVal,
    Order,
    Scope,
    Seq,
    TableVal,
    WaitVal,
    check,
    check_global_optargs,
    term_name,
    value_type,
)

if TYPE_CHECKING:
    from tests.reqlserver._server import ReqlService

V1_0 = 0x34C2BDC3
OLD_MAGICS = {0x3F61BA36, 0x723081E1, 0x5F75E83E, 0x400C2D20}
SERVER_VERSION = "2.4.4-10-g8de19b3542"

START, CONTINUE, STOP, NOREPLY_WAIT, SERVER_INFO_QUERY = 1, 2, 3, 4, 5

# The real server's first batch is about 1 MB / 4; later ones up to 1 MB.
FIRST_BATCH_BYTES = 256 * 1024
BATCH_BYTES = 1024 * 1024

SEQUENCE_FEED, ATOM_FEED, ORDER_BY_LIMIT_FEED, INCLUDES_STATES = 1, 2, 3, 5

_HEADER = struct.Struct("<QL")


def envelope(t: int, r: list[Any], e: int | None = None, b: Path | None = None,
             p: Any = None, n: list[int] | None = None) -> bytes:
    """A response in the server's key order: t, e, r, b, p, n."""
    parts = [f'"t":{t}']
    if e is not None:
        parts.append(f'"e":{e}')
    parts.append('"r":' + D.to_json(r))
    if b is not None:
        parts.append('"b":' + D.to_json(list(b)))
    if p is not None:
        parts.append('"p":' + D.to_json(p))
    if n is not None:
        parts.append('"n":' + D.to_json(n))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def _take_batch(items: list[Any], start: int, limit: int) -> int:
    """The end index of the batch starting at ``start`` (at least one item)."""
    size = 0
    end = start
    while end < len(items):
        size += len(D.to_json(items[end])) + 1
        end += 1
        if size >= limit:
            break
    return end


class Cursor:
    """The rest of a stream the client reads with CONTINUE."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.pos = 0
        self.pending: IDelayedCall | None = None

    def next_batch(self, limit: int) -> tuple[list[Any], bool]:
        end = _take_batch(self.items, self.pos, limit)
        batch = self.items[self.pos:end]
        self.pos = end
        return batch, self.pos >= len(self.items)


class Feed:
    """A changefeed on one token: changes wait until a CONTINUE is outstanding."""

    def __init__(self, proto: ReqlProtocol, token: int, spec: FeedVal, ev: Evaluator) -> None:
        self.proto = proto
        self.token = token
        self.spec = spec
        self.ev = ev
        self.queue: list[dict[str, Any]] = []
        self.outstanding = 0
        self.error: str | None = None
        self.closed = False
        kind = {"table": SEQUENCE_FEED, "point": ATOM_FEED, "limit": ORDER_BY_LIMIT_FEED}
        self.notes = [kind[spec.kind]] + ([INCLUDES_STATES] if spec.include_states else [])
        self.top: list[dict[str, Any]] = []
        spec.table.listeners.append(self.on_change)
        spec.table.aborters.append(self.abort)

    def first_batch(self) -> list[dict[str, Any]]:
        spec = self.spec
        first: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        initial: list[dict[str, Any]] = []
        if spec.kind == "limit":
            self.top = self.ev.apply_recipe(spec.table, spec.recipe)
            if spec.include_initial:
                initial = [self._initial(d) for d in self.top]
            # The real server sent a top-N feed's initial values with the first CONTINUE.
            if spec.include_states:
                first.append({"state": "initializing"})
            later.extend(initial)
            if spec.include_states:
                later.append({"state": "ready"})
        else:
            if spec.include_initial:
                if spec.kind == "point":
                    initial = [self._initial(spec.table.get(spec.key))]
                else:
                    docs = self.ev.apply_recipe(spec.table, spec.recipe)
                    initial = [self._initial(d) for d in docs]
                if spec.include_states:
                    first.append({"state": "initializing"})
                    later.append({"state": "ready"})
                first.extend(initial)
            elif spec.include_states:
                first.append({"state": "ready"})
        self.queue = later
        return first

    def _initial(self, doc: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"new_val": doc}
        if self.spec.include_types:
            out["type"] = "initial"
        return out

    def _change(self, old: Any, new: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"new_val": new, "old_val": old}
        if self.spec.include_types:
            out["type"] = "add" if old is None else ("remove" if new is None else "change")
        return out

    def on_change(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        spec = self.spec
        table = spec.table
        pk = table.primary_key
        changes: list[dict[str, Any]] = []
        try:
            if spec.kind == "point":
                doc = new if new is not None else old
                assert doc is not None
                if D.equal(doc[pk], spec.key):
                    changes.append(self._change(old, new))
            elif spec.kind == "table":
                old_in = old if self.ev.passes(table, spec.recipe, old) else None
                new_in = new if self.ev.passes(table, spec.recipe, new) else None
                if old_in is not None or new_in is not None:
                    changes.append(self._change(old_in, new_in))
            else:
                changes = self._limit_changes(table)
        except ReqlError as e:
            self.abort(e.message)
            return
        if changes:
            self.push(changes)

    def _limit_changes(self, table: Table) -> list[dict[str, Any]]:
        pk = table.primary_key
        new_top = self.ev.apply_recipe(table, self.spec.recipe)
        old_by_key = {D.canonical(d[pk]): d for d in self.top}
        new_by_key = {D.canonical(d[pk]): d for d in new_top}
        changes = []
        for key, doc in new_by_key.items():
            if key in old_by_key and not D.equal(old_by_key[key], doc):
                changes.append(self._change(old_by_key[key], doc))
        leaving = [d for k, d in old_by_key.items() if k not in new_by_key]
        entering = [d for k, d in new_by_key.items() if k not in old_by_key]
        for out_doc, in_doc in zip(leaving, entering):
            changes.append(self._change(out_doc, in_doc))
        for out_doc in leaving[len(entering):]:
            changes.append(self._change(out_doc, None))
        for in_doc in entering[len(leaving):]:
            changes.append(self._change(None, in_doc))
        self.top = new_top
        return changes

    def push(self, changes: list[dict[str, Any]]) -> None:
        if self.spec.squash:
            pk = self.spec.table.primary_key
            for change in changes:
                self._squash_into(change, pk)
        else:
            self.queue.extend(changes)
        if self.outstanding and self.queue:
            self.flush()

    def _squash_into(self, change: dict[str, Any], pk: str) -> None:
        doc = change.get("new_val") or change.get("old_val")
        if not isinstance(doc, dict) or "old_val" not in change:
            self.queue.append(change)
            return
        for i, queued in enumerate(self.queue):
            qdoc = queued.get("new_val") or queued.get("old_val")
            if "old_val" in queued and isinstance(qdoc, dict) and D.equal(qdoc.get(pk), doc.get(pk)):
                merged = self._change(queued["old_val"], change["new_val"])
                if merged["old_val"] is None and merged["new_val"] is None or (
                    merged["old_val"] is not None and merged["new_val"] is not None
                    and D.equal(merged["old_val"], merged["new_val"])
                ):
                    del self.queue[i]
                else:
                    self.queue[i] = merged
                return
        self.queue.append(change)

    def flush(self) -> None:
        batch, self.queue = self.queue, []
        self.outstanding -= 1
        self.proto.send(self.token, envelope(SUCCESS_PARTIAL, batch, n=self.notes))

    def on_continue(self) -> None:
        if self.error is not None:
            self.proto.send(self.token, envelope(RUNTIME_ERROR, [self.error], e=OP_FAILED, b=()))
            self.proto.feeds.pop(self.token, None)
            return
        self.outstanding += 1
        if self.queue:
            self.flush()

    def on_stop(self) -> None:
        for _ in range(self.outstanding):
            self.proto.send(self.token, envelope(SUCCESS_SEQUENCE, [], n=[]))
        self.outstanding = 0
        self.proto.send(self.token, envelope(SUCCESS_SEQUENCE, [], n=[]))
        self.close()

    def abort(self, message: str) -> None:
        """The table went away: the feed ends with an error."""
        self.close()
        if self.outstanding:
            self.outstanding = 0
            self.proto.send(self.token, envelope(RUNTIME_ERROR, [message], e=OP_FAILED, b=()))
            self.proto.feeds.pop(self.token, None)
        else:
            self.error = message

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        table = self.spec.table
        if self.on_change in table.listeners:
            table.listeners.remove(self.on_change)
        if self.abort in table.aborters:
            table.aborters.remove(self.abort)


class ReqlProtocol(Protocol):
    """The server end of one driver connection."""

    log = Logger()

    def __init__(self, service: ReqlService) -> None:
        self.service = service
        self.buf = bytearray()
        self.state = "magic"
        self.scram: ScramExchange | None = None
        self.cursors: dict[int, Cursor] = {}
        self.feeds: dict[int, Feed] = {}
        self.waits: dict[int, IDelayedCall] = {}
        self.lost: Deferred[None] = Deferred()

    # Connection life.

    def connectionMade(self) -> None:
        self.service.connections.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.state = "closed"
        self.service.connections.discard(self)
        for cursor in self.cursors.values():
            if cursor.pending is not None and cursor.pending.active():
                cursor.pending.cancel()
        for call in self.waits.values():
            if call.active():
                call.cancel()
        for feed in self.feeds.values():
            feed.close()
        self.cursors.clear()
        self.feeds.clear()
        self.waits.clear()
        if not self.lost.called:
            self.lost.callback(None)

    def send(self, token: int, body: bytes) -> None:
        if self.state == "closed" or self.transport is None:
            return
        self.transport.write(_HEADER.pack(token, len(body)) + body)

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while self.state != "closed":
            if self.state == "magic":
                if len(self.buf) < 4:
                    return
                (magic,) = struct.unpack("<L", bytes(self.buf[:4]))
                del self.buf[:4]
                if magic != V1_0:
                    self._refuse_protocol()
                    return
                self.state = "auth1"
            elif self.state in ("auth1", "auth2"):
                end = self.buf.find(b"\0")
                if end < 0:
                    return
                message = bytes(self.buf[:end])
                del self.buf[:end + 1]
                self._handshake(message)
            elif self.state == "ready":
                if len(self.buf) < 12:
                    return
                token, length = _HEADER.unpack(bytes(self.buf[:12]))
                if len(self.buf) < 12 + length:
                    return
                payload = bytes(self.buf[12:12 + length])
                del self.buf[:12 + length]
                self._query(token, payload)
            else:
                return

    # Handshake.

    def _refuse_protocol(self) -> None:
        assert self.transport is not None
        self.transport.write(
            b"ERROR: Received an unsupported protocol version. This port is for RethinkDB "
            b"queries. Does your client driver version not match the server?\n\0"
        )
        self.state = "closed"
        self.transport.loseConnection()

    def _hs_write(self, obj: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(D.to_json(obj).encode("utf-8") + b"\0")

    def _hs_fail(self, message: str, code: int) -> None:
        assert self.transport is not None
        self._hs_write({"error": message, "error_code": code, "success": False})
        self.state = "closed"
        self.transport.loseConnection()

    def _handshake(self, message: bytes) -> None:
        try:
            obj = json.loads(message.decode("utf-8"))
        except ValueError:
            self._hs_fail("Expected a JSON object in the handshake.", 1)
            return
        if not isinstance(obj, dict):
            self._hs_fail("Expected a JSON object in the handshake.", 1)
            return
        try:
            if self.state == "auth1":
                version = obj.get("protocol_version")
                if version != 0:
                    self._hs_fail(
                        f"Unsupported `protocol_version` {version}, expected between 0 and 0.", 2
                    )
                    return
                if obj.get("authentication_method") != "SCRAM-SHA-256":
                    self._hs_fail("Unsupported `authentication_method`.", 2)
                    return
                self.scram = ScramExchange(self.service.credentials,
                                           self.service.catalog.entropy.server_nonce())
                server_first = self.scram.server_first(str(obj.get("authentication", "")))
                if self.scram.user() != "admin":
                    self._hs_fail("Unknown user", 17)
                    return
                self._hs_write({"max_protocol_version": 0, "min_protocol_version": 0,
                                "server_version": SERVER_VERSION, "success": True})
                self._hs_write({"authentication": server_first, "success": True})
                self.state = "auth2"
            else:
                assert self.scram is not None
                final = self.scram.server_final(str(obj.get("authentication", "")))
                self._hs_write({"authentication": final, "success": True})
                self.state = "ready"
        except AuthFailed as e:
            self._hs_fail(e.message, e.code)

    # Queries.

    def _client_error(self, token: int, message: str) -> None:
        self.send(token, envelope(CLIENT_ERROR, [message], b=()))

    def _query(self, token: int, payload: bytes) -> None:
        try:
            query = D.from_json(payload)
        except ValueError as e:
            self._client_error(token, f"Server could not parse query: {e}.")
            return
        if not isinstance(query, list) or not query or not isinstance(query[0], int):
            self._client_error(token, "Server could not parse query: Expected a query type.")
            return
        qtype = query[0]
        if qtype == START:
            self._start(token, query)
        elif qtype == CONTINUE:
            self._continue(token)
        elif qtype == STOP:
            self._stop(token)
        elif qtype == NOREPLY_WAIT:
            self.send(token, envelope(WAIT_COMPLETE, []))
        elif qtype == SERVER_INFO_QUERY:
            catalog = self.service.catalog
            info = {"id": catalog.server_id, "name": catalog.server_name, "proxy": False}
            self.send(token, envelope(SERVER_INFO, [info]))
        else:
            self._client_error(token, f"Server could not parse query: Unrecognized QueryType: {qtype}.")

    def _start(self, token: int, query: list[Any]) -> None:
        term = query[1] if len(query) > 1 else None
        gopts = query[2] if len(query) > 2 and isinstance(query[2], dict) else {}
        noreply = gopts.get("noreply") is True
        profile = gopts.get("profile") is True
        began = time.perf_counter()
        ev = Evaluator(self.service, gopts, root=term)
        try:
            check(term)
            check_global_optargs(gopts)
            value = ev.ev(term, Scope(), ())
            body = None if noreply else self._result(token, value, ev, profile, began, term)
        except ReqlError as e:
            body = None if noreply else envelope(e.response_type, [e.message], e=e.code,
                                                 b=e.path)
            if e.code is not None and e.code >= 1000000:
                self.log.debug("query {token} failed: {message}", token=token, message=e.message)
        finally:
            if ev.dirty:
                self.service.persist()
        if body is not None:
            self.send(token, body)

    def _profile(self, term: Any, began: float) -> list[dict[str, Any]]:
        name = term_name(term[0]).lower() if isinstance(term, list) and term else "datum"
        elapsed = round((time.perf_counter() - began) * 1000, 6)
        return [{"description": f"Evaluating {name}.", "duration(ms)": elapsed, "sub_tasks": []}]

    def _result(self, token: int, value: Any, ev: Evaluator, profile: bool, began: float,
                term: Any) -> bytes | None:
        p = self._profile(term, began) if profile else None
        if isinstance(value, FeedVal):
            feed = Feed(self, token, value, ev)
            self.feeds[token] = feed
            return envelope(SUCCESS_PARTIAL, feed.first_batch(), p=p, n=feed.notes)
        if isinstance(value, WaitVal):
            delay = max(0.0, self.service.unavailable_until - self.service.seconds())
            body = envelope(SUCCESS_ATOM, [value.result], p=p)
            if delay <= 0:
                return body
            self.waits[token] = self.service.reactor.callLater(delay, self._send_wait, token, body)
            return None
        if isinstance(value, TableVal) or (isinstance(value, Seq) and not value.is_array):
            items = ev.items(value, ())
            cursor = Cursor(list(items))
            batch, done = cursor.next_batch(FIRST_BATCH_BYTES)
            if done:
                return envelope(SUCCESS_SEQUENCE, batch, p=p, n=[])
            self.cursors[token] = cursor
            return envelope(SUCCESS_PARTIAL, batch, p=p, n=[])
        if isinstance(value, (DbVal, FuncVal, Order)):
            kind = value_type(value)
            raise ReqlError(
                f"Query result must be of type DATUM, GROUPED_DATA, or STREAM (got {kind}).",
                (), 3000000,
            )
        if isinstance(value, D.Bound):
            raise ReqlError(f"Cannot convert `{value!r}` to JSON.", (), 3000000)
        datum = ev.datum(value, ())
        return envelope(SUCCESS_ATOM, [datum], p=p)

    def _send_wait(self, token: int, body: bytes) -> None:
        self.waits.pop(token, None)
        self.send(token, body)

    def _continue(self, token: int) -> None:
        feed = self.feeds.get(token)
        if feed is not None:
            feed.on_continue()
            return
        cursor = self.cursors.get(token)
        if cursor is None:
            self._client_error(token, f"Token {token} not in stream cache.")
            return
        if cursor.pending is None:
            # Like the real server, the next batch is read asynchronously.
            cursor.pending = self.service.reactor.callLater(0, self._next_batch, token)

    def _next_batch(self, token: int) -> None:
        cursor = self.cursors.get(token)
        if cursor is None:
            return
        cursor.pending = None
        batch, done = cursor.next_batch(BATCH_BYTES)
        if done:
            del self.cursors[token]
            self.send(token, envelope(SUCCESS_SEQUENCE, batch, n=[]))
        else:
            self.send(token, envelope(SUCCESS_PARTIAL, batch, n=[]))

    def _stop(self, token: int) -> None:
        feed = self.feeds.pop(token, None)
        if feed is not None:
            feed.on_stop()
            return
        cursor = self.cursors.pop(token, None)
        if cursor is not None:
            if cursor.pending is not None and cursor.pending.active():
                cursor.pending.cancel()
                self.send(token, envelope(SUCCESS_SEQUENCE, [], n=[]))
            self.send(token, envelope(SUCCESS_SEQUENCE, [], n=[]))
            return
        wait = self.waits.pop(token, None)
        if wait is not None and wait.active():
            wait.cancel()
        self._client_error(token, f"Token {token} not in stream cache.")
