# -*- test-case-name: tests.test_reqlserver -*-
"""The RethinkDB wire-protocol test server: transcript replay and real-driver tests."""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from rethinkdb import r
from rethinkdb.errors import (
    ReqlAuthError,
    ReqlCompileError,
    ReqlDriverError,
    ReqlNonExistenceError,
    ReqlOpFailedError,
    ReqlQueryLogicError,
    ReqlRuntimeError,
)
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.python.failure import Failure

from tests.reqlserver import RunningServer, start_server
from tests.reqlserver import _datum as D

r.set_loop_type("twisted")

pytestmark = [
    # The driver calls the deprecated defer.returnValue on every call (README bug 3).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TRANSCRIPT = Path(os.environ.get("REQL_TRANSCRIPT", "/work/shared/reql/transcript.jsonl"))
REPO = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 15.0


@pytest.fixture(autouse=True)
def no_logged_errors() -> Any:
    """Fail a test when Twisted logs an error (an exception in the server's protocol, an
    unhandled error in a Deferred, or the driver's stale handshake timer firing)."""
    from twisted.logger import ILogObserver, globalLogPublisher
    from zope.interface import provider

    errors: list[Any] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(observe)
    from twisted.logger import formatEvent

    assert not errors, [formatEvent(e) + str(e.get("log_failure", "")) for e in errors]


def with_timeout(d: Deferred[Any], seconds: float, what: str) -> Deferred[Any]:
    """Fail (rather than hang) when ``d`` does not fire in time."""
    def on_timeout(result: Any, timeout: float) -> Any:
        if isinstance(result, Failure):
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        return result

    return d.addTimeout(seconds, reactor, onTimeoutCancel=on_timeout)


def cancel_driver_handshake_timers() -> None:
    """The driver leaves its handshake timeout armed after a failed handshake (README
    bug 2); cancel it so the reactor is clean and no AlreadyCalledError gets logged."""
    for call in reactor.getDelayedCalls():
        func = getattr(call, "func", None)
        if getattr(func, "__name__", "") == "_handleHandshakeTimeout" and call.active():
            call.cancel()


# --------------------------------------------------------------------------------------
# Transcript replay
# --------------------------------------------------------------------------------------


def load_transcript() -> list[dict[str, Any]]:
    with TRANSCRIPT.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RecordedEntropy:
    """Feeds the server the run-dependent values of the recording, so that the replay
    compares byte for byte: the server id, database and table ids and generated keys
    (in the order the server created them), the server's SCRAM nonce halves (in
    connection order) and the admin user's salt."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.uuids: dict[str, deque[str]] = defaultdict(deque)
        self.nonces: deque[str] = deque()
        self.salt_value = b""
        client_nonce: dict[str, str] = {}
        for line in lines:
            body = line.get("json")
            kind = line.get("kind", "")
            if line.get("phase") == "handshake" and isinstance(body, dict):
                auth = body.get("authentication", "")
                if line["dir"] == "c2s" and kind == "handshake#1":
                    client_nonce[line["conn"]] = auth.split("r=", 1)[1]
                elif line["dir"] == "s2c" and kind == "handshake#2":
                    fields = dict(f.split("=", 1) for f in auth.split(","))
                    self.nonces.append(fields["r"][len(client_nonce[line["conn"]]):])
                    self.salt_value = base64.b64decode(fields["s"])
                continue
            if line["dir"] != "s2c" or not isinstance(body, dict):
                continue
            if body.get("t") == 5:
                self.uuids["server"].append(body["r"][0]["id"])
            result = body.get("r", [None])[0] if body.get("t") == 1 else None
            if isinstance(result, dict):
                if result.get("dbs_created"):
                    self.uuids["db"].append(result["config_changes"][0]["new_val"]["id"])
                if result.get("tables_created"):
                    self.uuids["table"].append(result["config_changes"][0]["new_val"]["id"])
                for key in result.get("generated_keys", []):
                    self.uuids["key"].append(key)

    def uuid(self, purpose: str) -> str:
        queue = self.uuids.get(purpose)
        if queue:
            return queue.popleft()
        import uuid

        return str(uuid.uuid4())

    def server_nonce(self) -> str:
        return self.nonces.popleft()

    def salt(self) -> bytes:
        return self.salt_value


class RawClient(Protocol):
    """A driver-less client: writes recorded bytes, reads handshake messages and frames."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.handshaking = True
        self.messages: deque[Any] = deque()
        self.waiting: deque[Deferred[Any]] = deque()
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.handshaking:
                end = self.buf.find(b"\0")
                if end < 0:
                    return
                raw = bytes(self.buf[:end])
                del self.buf[:end + 1]
                self._deliver((None, raw))
                message = json.loads(raw)
                if message.get("authentication", "").startswith("v=") or not message.get(
                    "success", True
                ):
                    self.handshaking = False
            else:
                if len(self.buf) < 12:
                    return
                token, length = struct.unpack("<QL", bytes(self.buf[:12]))
                if len(self.buf) < 12 + length:
                    return
                raw = bytes(self.buf[12:12 + length])
                del self.buf[:12 + length]
                self._deliver((token, raw))

    def _deliver(self, item: Any) -> None:
        if self.waiting:
            self.waiting.popleft().callback(item)
        else:
            self.messages.append(item)

    def next_message(self) -> Deferred[Any]:
        if self.messages:
            d: Deferred[Any] = Deferred()
            d.callback(self.messages.popleft())
            return d
        d = Deferred()
        self.waiting.append(d)
        return d

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def send_frame(self, token: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(struct.pack("<QL", token, len(payload)) + payload)


def _has_order_by(term: Any) -> bool:
    if isinstance(term, dict):
        return any(_has_order_by(v) for v in term.values())
    if isinstance(term, list):
        if term and term[0] == 41:
            return True
        return any(_has_order_by(item) for item in term)
    return False


class Replay:
    """Compares the server's answers with the recorded ones, line by line.

    Normalisations (everything else is compared byte for byte):

    1. Unordered streams. A stream answer (SUCCESS_PARTIAL or SUCCESS_SEQUENCE with
       ``n: []``) to a query without ORDER_BY comes back from the real server in its shard
       hash order, in batches cut by an estimate of its internal serialized size. The test
       server yields primary-key order and cuts batches by JSON size. For those answers
       the test compares the response type of every message exactly, and the documents as
       multisets: all of a token's batches together must equal the recorded ones when the
       stream ran to its end; when the client STOPped it early, each delivered document
       must be one the real server delivered for the same query.
    2. Profiles. ``p`` holds timings and the real server's shard layout; it is checked to
       be a list of ``{"description", "duration(ms)", "sub_tasks"}`` trees on both sides
       and not compared further.
    3. Run-dependent values (UUIDs, SCRAM nonces and salt) need no normalisation: the
       server takes them from RecordedEntropy. ``t_ms`` is not compared.
    """

    def __init__(self, lines: list[dict[str, Any]], port: int) -> None:
        self.lines = lines
        self.port = port
        self.clients: dict[str, RawClient] = {}
        self.starts: dict[tuple[str, int], bytes] = {}
        self.stopped: set[tuple[str, int]] = set()
        self.actual_docs: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.recorded_docs: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.universe: dict[bytes, set[str]] = defaultdict(set)
        self.compared = 0
        for line in lines:
            if line["dir"] == "c2s" and line.get("kind") == "START":
                key = (line["conn"], line["token"])
                payload = compact(line["json"])
                self.starts[key] = payload
            elif line["dir"] == "s2c" and line["token"] is not None and isinstance(
                line.get("json"), dict
            ):
                key = (line["conn"], line["token"])
                body = line["json"]
                if self._unordered(key, body):
                    for doc in body["r"]:
                        self.universe[self.starts[key]].add(D.to_json(doc))

    def _unordered(self, key: tuple[str, int], body: dict[str, Any]) -> bool:
        if body.get("t") not in (2, 3) or body.get("n") != [] or key not in self.starts:
            return False
        return not _has_order_by(json.loads(self.starts[key])[1])

    async def run(self) -> None:
        for number, line in enumerate(self.lines):
            where = f"line {number} ({line['step']}, {line['conn']}, {line.get('kind')})"
            if line["dir"] == "c2s":
                await self._send(line)
            else:
                await self._expect(line, where)

    async def _send(self, line: dict[str, Any]) -> None:
        conn = line["conn"]
        if line.get("kind") == "magic":
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
            client = await with_timeout(connectProtocol(endpoint, RawClient()), WAIT_SECONDS,
                                        f"connection {conn}")
            self.clients[conn] = client
            assert client.transport is not None
            client.transport.write(bytes.fromhex(line["raw_hex"]))
            return
        client = self.clients[conn]
        assert client.transport is not None
        if line.get("phase") == "eof":
            client.transport.loseConnection()
            return
        if line.get("phase") == "handshake":
            client.transport.write(compact(line["json"]) + b"\0")
            return
        if line.get("kind") == "STOP":
            self.stopped.add((conn, line["token"]))
        client.send_frame(line["token"], compact(line["json"]))

    async def _expect(self, line: dict[str, Any], where: str) -> None:
        client = self.clients[line["conn"]]
        if line.get("phase") == "eof":
            await with_timeout(client.closed, WAIT_SECONDS, f"server EOF at {where}")
            self.compared += 1
            return
        token, raw = await with_timeout(client.next_message(), WAIT_SECONDS, where)
        assert token == line["token"], f"{where}: answer on token {token}"
        expected = line["json"]
        self.compared += 1
        key = (line["conn"], line["token"])
        if line["token"] is not None and self._unordered(key, expected):
            self._compare_unordered(key, expected, json.loads(raw), where)
        elif "p" in expected:
            actual = json.loads(raw)
            for body in (expected, actual):
                assert isinstance(body["p"], list) and body["p"], f"{where}: profile {body['p']}"
                assert {"description", "duration(ms)", "sub_tasks"} <= set(body["p"][0])
                body["p"] = "<profile>"
            assert list(actual) == list(expected), f"{where}: key order"
            assert actual == expected, where
        else:
            assert raw.decode("utf-8") == compact(expected).decode("utf-8"), where

    def _compare_unordered(self, key: tuple[str, int], expected: dict[str, Any],
                           actual: dict[str, Any], where: str) -> None:
        assert list(actual) == ["t", "r", "n"], f"{where}: keys {list(actual)}"
        assert (actual["t"], actual["n"]) == (expected["t"], expected["n"]), where
        self.actual_docs[key].extend(D.to_json(doc) for doc in actual["r"])
        self.recorded_docs[key].extend(D.to_json(doc) for doc in expected["r"])
        assert len(set(self.actual_docs[key])) == len(self.actual_docs[key]), (
            f"{where}: a document was delivered twice"
        )
        if key in self.stopped:
            universe = self.universe[self.starts[key]]
            assert set(self.actual_docs[key]) <= universe, where
        elif expected["t"] == 2:
            assert sorted(self.actual_docs[key]) == sorted(self.recorded_docs[key]), where


@pytest_twisted.ensureDeferred
async def test_transcript_replay() -> None:
    """Every recorded connection (main, feed, feed-closing, badauth and the blocking
    fallback ones) replayed on raw sockets; every server answer compared."""
    lines = load_transcript()
    server = await start_server(reactor, entropy=RecordedEntropy(lines), server_name="reqlcap")
    replay = Replay(lines, server.port)
    try:
        await replay.run()
    finally:
        for client in replay.clients.values():
            if client.transport is not None:
                client.transport.loseConnection()
        await server.stop()
    assert replay.compared == sum(1 for line in lines if line["dir"] == "s2c")


# --------------------------------------------------------------------------------------
# The real driver in Twisted mode
# --------------------------------------------------------------------------------------


@pytest_twisted.async_yield_fixture()
async def server() -> Any:
    running = await start_server(reactor)
    try:
        yield running
    finally:
        await running.stop()


async def connect(server: RunningServer, **kwargs: Any) -> Any:
    return await with_timeout(r.connect(host="127.0.0.1", port=server.port, **kwargs),
                              WAIT_SECONDS, "r.connect")


async def run(query: Any, conn: Any, **kwargs: Any) -> Any:
    return await with_timeout(query.run(conn, **kwargs), WAIT_SECONDS, str(query))


async def read_all(cursor: Any) -> list[Any]:
    items = []
    while await with_timeout(cursor.fetch_next(), WAIT_SECONDS, "fetch_next"):
        items.append(await cursor.next())
    return items


async def next_item(cursor: Any) -> Any:
    # cursor.next() may time out safely; fetch_next() must not (README bug 1).
    return await with_timeout(cursor.next(), WAIT_SECONDS, "cursor.next()")


PLAYERS = [
    {"id": "alice", "board": "demo", "name": "Alice", "score": 10},
    {"id": "bob", "board": "demo", "name": "Bob", "score": 7},
    {"board": "demo", "name": "Carol", "score": 12},
    {"id": "dave", "board": "demo", "name": "Dave", "score": 7},
    {"id": "erin", "board": "other", "name": "Erin", "score": 20},
]


async def make_board(conn: Any) -> Any:
    await run(r.db_create("lb"), conn)
    await run(r.db("lb").table_create("players"), conn)
    players = r.db("lb").table("players")
    await run(players.index_create("board_score", [r.row["board"], r.row["score"]]), conn)
    await run(players.index_wait(), conn)
    result = await run(players.insert(PLAYERS), conn)
    assert result["inserted"] == 5 and len(result["generated_keys"]) == 1
    return players


def top(players: Any, board: str, n: int) -> Any:
    return players.between([board, r.minval], [board, r.maxval], index="board_score").order_by(
        index=r.desc("board_score")).limit(n)


@pytest_twisted.ensureDeferred
async def test_driver_connect_and_admin(server: RunningServer) -> None:
    conn = await connect(server)
    info = await with_timeout(conn.server(), WAIT_SECONDS, "conn.server()")
    assert info["name"] == "reqlserver" and info["proxy"] is False
    assert await run(r.db_list(), conn) == ["rethinkdb", "test"]
    created = await run(r.db_create("lb"), conn)
    assert created["dbs_created"] == 1
    with pytest.raises(ReqlOpFailedError, match="Database `lb` already exists."):
        await run(r.db_create("lb"), conn)
    table = await run(r.db("lb").table_create("players", primary_key="id"), conn)
    assert table["tables_created"] == 1
    assert table["config_changes"][0]["new_val"]["primary_key"] == "id"
    assert await run(r.db("lb").table_list(), conn) == ["players"]
    players = r.db("lb").table("players")
    await run(players.index_create("board_score_fn", lambda p: [p["board"], p["score"]]), conn)
    assert await run(players.index_list(), conn) == ["board_score_fn"]
    status = await run(players.index_wait("board_score_fn"), conn)
    assert status[0]["ready"] is True and status[0]["index"] == "board_score_fn"
    assert await run(r.db("lb").wait(), conn) == {"ready": 1}
    assert await run(players.wait(), conn) == {"ready": 1}
    dropped = await run(r.db_drop("lb"), conn)
    assert (dropped["dbs_dropped"], dropped["tables_dropped"]) == (1, 1)
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")
    assert not conn.is_open()


@pytest_twisted.ensureDeferred
async def test_driver_reads_and_writes(server: RunningServer) -> None:
    conn = await connect(server, db="lb")
    players = await make_board(conn)
    assert await run(players.get("alice"), conn) == PLAYERS[0]
    assert await run(players.get("nobody"), conn) is None
    duplicate = await run(players.insert({"id": "alice", "board": "demo"}), conn)
    assert duplicate["errors"] == 1
    assert duplicate["first_error"].startswith("Duplicate primary key `id`:\n{\n\t\"board\"")

    changed = await run(players.get("alice").update(
        {"score": r.row["score"] + 5}, return_changes=True), conn)
    assert changed["replaced"] == 1
    assert changed["changes"] == [{"new_val": {**PLAYERS[0], "score": 15},
                                   "old_val": PLAYERS[0]}]
    missing = await run(players.get("nobody").update({"score": 1}, return_changes=True), conn)
    assert (missing["skipped"], missing["changes"]) == (1, [])
    await run(players.get("bob").update(lambda p: {"score": p["score"] + 1}), conn)

    best = await read_all(await run(top(players, "demo", 3), conn))
    assert [p["name"] for p in best] == ["Alice", "Carol", "Bob"]
    # Ties come out by primary key, descending under a descending index.
    await run(players.get("bob").update({"score": 7}), conn)
    tied = await read_all(await run(top(players, "demo", 4), conn))
    assert [p["name"] for p in tied] == ["Alice", "Carol", "Dave", "Bob"]
    rank = await run(players.between(["demo", 7], ["demo", r.maxval], index="board_score",
                                     left_bound="open").count(), conn)
    assert rank == 2
    assert await run(players.filter({"board": "demo"}).count(), conn) == 4
    assert await run(players.filter(r.row["score"] > 10).count(), conn) == 3
    same = await read_all(await run(players.get_all(["demo", 7], index="board_score"), conn))
    assert sorted(p["id"] for p in same) == ["bob", "dave"]
    assert await run(players.count(), conn) == 5
    assert await run(r.table("players").count(), conn) == 5  # the connection's db

    replaced = await run(players.get("erin").replace({"id": "erin", "board": "demo"}), conn)
    assert replaced["replaced"] == 1
    deleted = await run(players.get("erin").delete(return_changes=True), conn)
    assert deleted["deleted"] == 1 and deleted["changes"][0]["new_val"] is None
    looped = await run(r.expr(["x", "y"]).for_each(
        lambda n: players.get("bob").update({"name": n})), conn)
    assert looped["replaced"] == 2
    assert await run(players.get("bob")["name"], conn) == "y"
    assert await run(players.get("bob")["nope"].default("fallback"), conn) == "fallback"
    assert await run(r.branch(r.expr(1) < 2, "yes", "no"), conn) == "yes"
    assert await run(r.expr("5").coerce_to("number"), conn) == 5
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")


@pytest_twisted.ensureDeferred
async def test_driver_errors(server: RunningServer) -> None:
    conn = await connect(server)
    players = await make_board(conn)
    with pytest.raises(ReqlOpFailedError, match="Table `lb.nope` does not exist."):
        await run(r.db("lb").table("nope"), conn)
    with pytest.raises(ReqlOpFailedError, match="Database `nope` does not exist."):
        await run(r.db("nope").table("players"), conn)
    with pytest.raises(ReqlOpFailedError, match="Index `nope` was not found"):
        await run(players.between(1, 2, index="nope"), conn)
    with pytest.raises(ReqlQueryLogicError, match="Expected type NUMBER but found STRING."):
        await run(r.expr(1) + "a", conn)
    with pytest.raises(ReqlNonExistenceError, match="No attribute `nope` in object:"):
        await run(players.get("alice")["nope"], conn)
    with pytest.raises(ReqlCompileError, match="Expected 2 arguments but found 1."):
        await run(players.get(), conn)
    with pytest.raises(ReqlCompileError, match="r.row is not defined in this context."):
        await run(r.row["score"], conn)
    # A term the server does not know is loud, never an empty answer.
    with pytest.raises(ReqlCompileError, match="Term JAVASCRIPT not implemented by the test server."):
        await run(r.js("1 + 1"), conn)
    with pytest.raises(ReqlCompileError, match="Term SAMPLE not implemented"):
        await run(players.sample(2), conn)
    with pytest.raises(ReqlCompileError, match="Unrecognized optional argument `return_change`."):
        await run(players.get("bob").update({"score": 1}, return_change=True), conn)
    with pytest.raises(ReqlCompileError, match="Unrecognized global optional argument `dbb`."):
        await run(players.count(), conn, dbb="lb")
    with pytest.raises(ReqlQueryLogicError, match="Could not prove argument deterministic."):
        await run(players.get("bob").update({"other": r.table("players").count()}), conn)
    done = await run(players.get("bob").update({"other": r.uuid()}, non_atomic=True), conn)
    assert done["replaced"] == 1
    # The connection is still usable after all of these.
    assert await run(players.count(), conn) == 5
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")


@pytest_twisted.ensureDeferred
async def test_driver_batches_pipelining_and_noreply(server: RunningServer) -> None:
    conn = await connect(server)
    await run(r.db_create("lb"), conn)
    await run(r.db("lb").table_create("bulk"), conn)
    bulk = r.db("lb").table("bulk")
    docs = [{"id": i, "v": i % 7, "pad": "x" * 100} for i in range(3000)]
    assert (await run(bulk.insert(docs), conn))["inserted"] == 3000
    # More than one batch: SUCCESS_PARTIAL, CONTINUE, SUCCESS_SEQUENCE.
    everything = await read_all(await run(bulk, conn))
    assert sorted(d["id"] for d in everything) == list(range(3000))
    # Closing a half-read cursor sends STOP; the connection stays usable.
    cursor = await run(bulk, conn)
    first = await next_item(cursor)
    assert first["pad"] == "x" * 100
    cursor.close()
    counts = await with_timeout(
        _gather([bulk.count().run(conn), bulk.get(5).run(conn)]), WAIT_SECONDS, "pipelined")
    assert counts == [3000, {"id": 5, "v": 5, "pad": "x" * 100}]
    await bulk.insert({"id": "noreply", "v": 0}).run(conn, noreply=True)
    await with_timeout(conn.noreply_wait(), WAIT_SECONDS, "noreply_wait")
    assert await run(bulk.count(), conn) == 3001
    profiled = await run(bulk.count(), conn, profile=True)
    assert profiled["value"] == 3001 and profiled["profile"][0]["description"]
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")


def _gather(ds: list[Deferred[Any]]) -> Deferred[list[Any]]:
    from twisted.internet.defer import gatherResults

    return gatherResults(ds, consumeErrors=True)


@pytest_twisted.ensureDeferred
async def test_driver_changefeeds(server: RunningServer) -> None:
    conn = await connect(server)
    players = await make_board(conn)
    feed_conn = await connect(server)

    feed = await run(players.changes(include_types=True), feed_conn)
    await run(players.insert({"id": "gina", "board": "demo", "score": 9}), conn)
    assert await next_item(feed) == {
        "new_val": {"id": "gina", "board": "demo", "score": 9}, "old_val": None, "type": "add"}
    await run(players.get("gina").update({"score": r.row["score"] + 2}), conn)
    change = await next_item(feed)
    assert (change["type"], change["old_val"]["score"], change["new_val"]["score"]) == (
        "change", 9, 11)
    await run(players.get("gina").delete(), conn)
    assert (await next_item(feed))["type"] == "remove"
    feed.close()

    point = await run(players.get("bob").changes(include_initial=True), feed_conn)
    assert await next_item(point) == {"new_val": PLAYERS[1]}
    await run(players.get("alice").update({"score": 1}), conn)  # not bob: not on this feed
    await run(players.get("bob").update({"score": 8}), conn)
    assert (await next_item(point))["new_val"]["score"] == 8
    point.close()

    best = await run(top(players, "demo", 3).changes(include_initial=True, include_types=True),
                     feed_conn)
    initial = [await next_item(best) for _ in range(3)]
    assert [c["new_val"]["id"] for c in initial][:1] and all(
        c["type"] == "initial" for c in initial)
    assert [c["new_val"]["score"] for c in initial] == [12, 8, 7]
    await run(players.get("alice").update({"score": 30}), conn)  # enters; dave (7) leaves
    entering = await next_item(best)
    assert entering["type"] == "change"
    assert entering["new_val"]["id"] == "alice" and entering["old_val"]["id"] == "dave"
    best.close()

    states = await run(players.filter({"board": "other"}).changes(
        include_initial=True, include_states=True), feed_conn)
    assert await next_item(states) == {"state": "initializing"}
    assert (await next_item(states))["new_val"]["id"] == "erin"
    assert await next_item(states) == {"state": "ready"}
    await run(players.get("bob").update({"score": 1}), conn)  # board demo: filtered out
    await run(players.get("erin").update({"score": 21}), conn)
    assert (await next_item(states))["new_val"]["score"] == 21
    states.close()

    # Closing a connection with an open feed: the driver fails the feed locally.
    open_feed = await run(players.changes(), feed_conn)
    await with_timeout(feed_conn.close(), WAIT_SECONDS, "feed_conn.close()")
    with pytest.raises(ReqlRuntimeError, match="Connection is closed"):
        await next_item(open_feed)
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")


@pytest_twisted.ensureDeferred
async def test_driver_wrong_password() -> None:
    running = await start_server(reactor, password="s3cret")
    try:
        with pytest.raises(ReqlAuthError, match="Wrong password"):
            await connect(running, password="wrong", timeout=5)
        cancel_driver_handshake_timers()
        with pytest.raises(ReqlAuthError, match="Wrong password"):
            await connect(running)  # the empty password
        cancel_driver_handshake_timers()
        conn = await connect(running, password="s3cret")
        assert await run(r.expr(41) + 1, conn) == 42
        await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")
        with pytest.raises(ReqlAuthError, match="Unknown user"):
            await connect(running, user="mallory", password="s3cret")
        cancel_driver_handshake_timers()
    finally:
        cancel_driver_handshake_timers()
        await running.stop()


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    from twisted.internet.task import deferLater

    for _ in range(500):
        if predicate():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"never happened: {what}")


@pytest_twisted.ensureDeferred
async def test_stop_mid_stream_and_restart_on_same_port(server: RunningServer) -> None:
    conn = await connect(server)
    players = await make_board(conn)
    feed = await run(players.changes(), conn)
    pending = feed.next()  # hangs for ever once the server is gone (README bug 6)
    port = server.port
    await with_timeout(server.stop(), WAIT_SECONDS, "server.stop()")
    assert server.connections == 0
    await wait_until(lambda: not conn.is_open(), "the driver sees the connection lost")
    pending.addErrback(lambda f: None)
    pending.cancel()  # cancelling a hung next() is safe
    with pytest.raises(ReqlDriverError):
        await connect(server, timeout=2)

    await server.restart(unavailable_for=0.3)
    assert server.port == port
    conn2 = await connect(server)
    assert await run(players.get("alice"), conn2) == PLAYERS[0]  # same data
    with pytest.raises(ReqlOpFailedError, match="primary replica for shard"):
        await run(players.changes(), conn2)
    assert await run(r.db("lb").wait(), conn2) == {"ready": 1}
    feed2 = await run(players.changes(), conn2)
    await run(players.get("bob").update({"score": 99}), conn2)
    assert (await next_item(feed2))["new_val"]["score"] == 99
    feed2.close()
    await with_timeout(conn2.close(), WAIT_SECONDS, "conn2.close()")


class _LineReader(ProcessProtocol):
    def __init__(self) -> None:
        self.first_line: Deferred[str] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.out = b""
        self.err = b""

    def outReceived(self, data: bytes) -> None:
        self.out += data
        if b"\n" in self.out and not self.first_line.called:
            self.first_line.callback(self.out.split(b"\n", 1)[0].decode())

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        if not self.first_line.called:
            self.first_line.errback(RuntimeError(f"server exited: {self.err.decode()}"))
        self.ended.callback(None)


async def spawn_server(data: str) -> tuple[_LineReader, int]:
    proto = _LineReader()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reactor.spawnProcess(proto, sys.executable,
                         [sys.executable, "-m", "tests.reqlserver", "--port", "0",
                          "--data", data], env=env, path=str(REPO))
    line = await with_timeout(proto.first_line, 30, "the server's port line")
    assert line.startswith("reqlserver listening on 127.0.0.1:"), line
    return proto, int(line.rsplit(":", 1)[1])


@pytest_twisted.ensureDeferred
async def test_standalone_process_keeps_data_across_restarts(tmp_path: Path) -> None:
    data = str(tmp_path / "reql.json")
    proto, port = await spawn_server(data)
    try:
        conn = await with_timeout(r.connect(host="127.0.0.1", port=port), WAIT_SECONDS, "connect")
        players = await make_board(conn)
        await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")
    finally:
        assert proto.transport is not None
        proto.transport.signalProcess("TERM")
        await with_timeout(proto.ended, 30, "the server process to exit")

    proto, port = await spawn_server(data)
    try:
        conn = await with_timeout(r.connect(host="127.0.0.1", port=port), WAIT_SECONDS, "connect")
        assert await run(players.get("alice"), conn) == PLAYERS[0]
        best = await read_all(await run(top(players, "demo", 2), conn))
        assert [p["name"] for p in best] == ["Carol", "Alice"]  # the index came back too
        await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")
    finally:
        assert proto.transport is not None
        proto.transport.signalProcess("TERM")
        await with_timeout(proto.ended, 30, "the server process to exit")


@pytest_twisted.ensureDeferred
async def test_dropping_a_table_ends_its_feeds(server: RunningServer) -> None:
    conn = await connect(server)
    players = await make_board(conn)
    feed = await run(players.changes(), conn)
    waiting = feed.next()
    await run(r.db("lb").table_drop("players"), conn)
    with pytest.raises(ReqlOpFailedError, match=r"Changefeed aborted \(table unavailable\)."):
        await with_timeout(waiting, WAIT_SECONDS, "the aborted feed")
    assert await run(r.db("lb").table_list(), conn) == []
    await with_timeout(conn.close(), WAIT_SECONDS, "conn.close()")


# --------------------------------------------------------------------------------------
# Datum order (unit)
# --------------------------------------------------------------------------------------


def test_datum_order_across_types() -> None:
    values = ["a", {"a": 1}, 3, None, True, [1], D.MAXVAL, D.MINVAL,
              {"$reql_type$": "TIME", "epoch_time": 0, "timezone": "+00:00"}]
    ordered = sorted(values, key=D.sort_key)
    assert ordered == [D.MINVAL, [1], True, None, 3, {"a": 1},
                       {"$reql_type$": "TIME", "epoch_time": 0, "timezone": "+00:00"}, "a",
                       D.MAXVAL]


def test_datum_order_of_compound_keys() -> None:
    keys = [["demo", D.MAXVAL], ["demo", 12], ["demo"], ["demo", "x"], ["demo", D.MINVAL],
            ["demo", 7.5], ["a", 100], ["demo", 7]]
    assert sorted(keys, key=D.sort_key) == [
        ["a", 100], ["demo"], ["demo", D.MINVAL], ["demo", 7], ["demo", 7.5], ["demo", 12],
        ["demo", "x"], ["demo", D.MAXVAL]]
    assert D.equal(7, 7.0) and D.compare([1, 2], [1, 2, 0]) < 0


def test_pretty_printing_matches_the_server() -> None:
    assert D.pretty({"id": "demo", "name": "Demo"}) == '{\n\t"id":\t"demo",\n\t"name":\t"Demo"\n}'
    assert D.pretty({"a": {"b": [1, 2.5]}}) == '{\n\t"a":\t{\n\t\t"b":\t[1, 2.5]\n\t}\n}'
