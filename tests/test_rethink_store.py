"""RethinkDB-specific store behaviour: URLs, bootstrap, outside writes, losing the server.

The shared behaviour suite (tests/test_store.py) covers the Store contract; this file covers
what only the RethinkDB store has. Integration tests run against the wire-protocol test
server, or a real RethinkDB when LEADERBOARD_TEST_RETHINKDB_URL is set.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock

from leaderboard.errors import NotFound, StoreUnavailable
from leaderboard.model import Board, Player
from leaderboard.store import RESYNC, Change
from leaderboard.store._rethink_link import Backoff, QueryTimeout, within
from leaderboard.store.rethink import (
    RethinkSettings,
    board_change_from_doc,
    board_from_doc,
    change_from_doc,
    parse_rethink_url,
    player_from_doc,
)

# -- URL parsing --------------------------------------------------------------------------


def test_url_defaults() -> None:
    s = parse_rethink_url("rethinkdb://db.example/leaderboard")
    assert s == RethinkSettings("db.example", 28015, "leaderboard", "admin", "")


def test_url_full() -> None:
    s = parse_rethink_url("rethinkdb://app:s%40cret%2F1@10.0.0.5:29015/lb_prod")
    assert (s.host, s.port, s.db, s.user, s.password) == ("10.0.0.5", 29015, "lb_prod", "app", "s@cret/1")


def test_url_user_without_password() -> None:
    s = parse_rethink_url("rethinkdb://reader@localhost/lb")
    assert (s.user, s.password) == ("reader", "")


def test_password_never_in_repr() -> None:
    s = parse_rethink_url("rethinkdb://app:hunter2@localhost/lb")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in s.where


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite:///x.db", "not a RethinkDB URL"),
        ("postgres://u:p@h/db", "not a RethinkDB URL"),
        ("rethinkdb:///lb", "no host"),
        ("rethinkdb://localhost", "database name"),
        ("rethinkdb://localhost/", "database name"),
        ("rethinkdb://localhost/a/b", "database name"),
        ("rethinkdb://localhost/bad.name", "database name"),
        ("rethinkdb://localhost:0/lb", "port"),
        ("rethinkdb://localhost:99999/lb", "port"),
        ("rethinkdb://localhost:http/lb", "port"),
        ("rethinkdb://localhost/lb?timeout=5", "no query"),
        ("rethinkdb://[::1]:28015/lb", "IPv6"),
    ],
)
def test_url_rejected_with_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_rethink_url(url)


def test_rejected_url_message_hides_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_rethink_url("rethinkdb://app:hunter2@localhost/bad.name")
    assert "hunter2" not in str(info.value)


def test_open_store_accepts_rethinkdb_urls() -> None:
    from leaderboard.store import open_store
    from leaderboard.store.rethink import RethinkStore

    store = open_store("rethinkdb://localhost:28016/lb", Clock())
    assert isinstance(store, RethinkStore)
    assert store.settings.port == 28016
    assert store.ready is False


# -- documents and changes ----------------------------------------------------------------


def test_player_from_doc() -> None:
    doc = {"id": "b/p", "board": "b", "player": "p", "name": "P", "score": 7}
    assert player_from_doc(doc) == Player("b", "p", "P", 7)
    # Written by hand without the board/player fields: the key still says which player.
    assert player_from_doc({"id": "b/p", "name": "P", "score": 7.0}) == Player("b", "p", "P", 7)
    junk: list[object] = [None, [], {"id": "x"}, {"id": "b/p", "name": "P", "score": "7"},
                          {"id": "b/p", "name": "P", "score": 1.5},
                          {"id": "b/p", "name": "P", "score": True}]
    for junk_doc in junk:
        assert player_from_doc(junk_doc) is None


def test_change_from_doc() -> None:
    old = {"id": "b/p", "board": "b", "player": "p", "name": "P", "score": 1}
    new = dict(old, score=4)
    assert change_from_doc({"new_val": new, "old_val": old, "type": "change"}) == Change(
        "b", "p", Player("b", "p", "P", 1), Player("b", "p", "P", 4)
    )
    assert change_from_doc({"new_val": None, "old_val": old, "type": "remove"}) == Change(
        "b", "p", Player("b", "p", "P", 1), None
    )
    assert change_from_doc({"new_val": new, "old_val": None}) == Change(
        "b", "p", None, Player("b", "p", "P", 4)
    )
    for noise in ({"state": "ready"}, {"new_val": new, "type": "initial"}, {"x": 1},
                  {"new_val": {"id": "junk"}, "old_val": None}):
        assert change_from_doc(noise) is None


def test_board_from_doc() -> None:
    doc = {"id": "t", "name": "Times", "order": "asc", "operator": "best",
           "metadata": '{"unit":"ms","big":1152921504606846977}'}
    assert board_from_doc(doc) == Board("t", "Times", "asc", "best",
                                        {"unit": "ms", "big": 2**60 + 1})
    # Stored before boards had options: the defaults.
    assert board_from_doc({"id": "old", "name": "Old"}) == Board("old", "Old", "desc", "incr", {})
    # Written by hand: metadata as an object is read too; nonsense options are the defaults.
    hand = {"id": "h", "metadata": {"a": 1}, "order": "sideways", "operator": 3}
    assert board_from_doc(hand) == Board("h", "h", "desc", "incr", {"a": 1})
    assert board_from_doc({"id": "j", "name": "J", "metadata": "{not json"}) == Board("j", "J")
    junk_docs: list[object] = [None, [], {"name": "no id"}, {"id": 5}]
    for junk in junk_docs:
        assert board_from_doc(junk) is None


def test_board_change_from_doc() -> None:
    doc = {"id": "b", "name": "B"}
    # Only a deletion is announced (a board with no player: the board itself).
    assert board_change_from_doc({"new_val": None, "old_val": doc, "type": "remove"}) == (
        "b", Change("b")
    )
    # Any other write only makes the cached options stale.
    assert board_change_from_doc({"new_val": doc, "old_val": None, "type": "add"}) == ("b", None)
    assert board_change_from_doc({"new_val": doc, "old_val": doc}) == ("b", None)
    for noise in ({"state": "ready"}, {"new_val": doc, "type": "initial"}, {"x": 1},
                  {"new_val": None, "old_val": {"id": 3}}):
        assert board_change_from_doc(noise) == (None, None)


# -- timers -------------------------------------------------------------------------------


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    b = Backoff(0.1, 1.0, rand=lambda: 0.5)
    assert [round(b.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next() == pytest.approx(0.1)
    jittered = Backoff(1.0, 10.0, rand=lambda: 0.0)
    assert jittered.next() == pytest.approx(0.8)


def test_within_times_out_without_cancelling_the_driver_deferred() -> None:
    clock = Clock()
    cancelled: list[Deferred[int]] = []
    inner: Deferred[int] = Deferred(cancelled.append)
    outer = within(inner, 2.0, clock, "a test")
    failures: list[Any] = []
    outer.addErrback(failures.append)
    clock.advance(1.9)
    assert not failures
    clock.advance(0.2)
    assert failures and failures[0].check(QueryTimeout)
    assert isinstance(failures[0].value, StoreUnavailable)
    assert cancelled == []
    inner.errback(RuntimeError("late"))  # consumed: no "Unhandled error in Deferred"
    assert clock.getDelayedCalls() == []


def test_within_passes_results_and_cancels_its_timer() -> None:
    clock = Clock()
    inner: Deferred[int] = Deferred()
    results: list[int] = []
    within(inner, 2.0, clock, "a test").addCallback(results.append)
    inner.callback(5)
    assert results == [5]
    assert clock.getDelayedCalls() == []


# -- integration: the test server, or a real RethinkDB -------------------------------------

FAST = {"backoff_initial": 0.05, "backoff_max": 0.5, "connect_timeout": 3.0, "query_timeout": 5.0}


async def eventually(predicate: Any, what: str, timeout: float = 15.0) -> None:
    """Poll ``predicate`` on the real reactor: a guard against hangs, not a timing check."""
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while not predicate():
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise AssertionError(f"gave up waiting: {what}")
        await deferLater(reactor, 0.02, lambda: None)  # type: ignore[arg-type]


async def next_change(stream: Any, timeout: float = 10.0) -> Change:
    d = stream.next()
    d.addTimeout(timeout, reactor)
    return await d  # type: ignore[no-any-return]


async def next_real_change(stream: Any) -> Change:
    while True:
        change = await next_change(stream)
        if change.board is not None:
            return change


def failed_already(d: Deferred[Any], kind: type[Exception]) -> Exception:
    """``d`` has failed with ``kind`` by the time the call returned: it did not wait."""
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert failures, "the call is waiting instead of failing fast"
    assert failures[0].check(kind), failures[0]
    return failures[0].value  # type: ignore[no-any-return]


async def expect(d: Deferred[Any], kind: type[Exception]) -> Exception:
    try:
        await d.addTimeout(15, reactor)
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


@pytest_twisted.ensureDeferred
async def test_bootstrap_is_idempotent_and_safe_concurrently() -> None:
    from tests.rethink_fixture import RethinkStore, connect, database, driver

    db = await database(reactor)
    stores = [RethinkStore(db.settings, reactor, **FAST) for _ in range(3)]
    try:
        # Two processes starting at once on a fresh database: both must come up.
        await gatherResults([stores[0].start(), stores[1].start()])
        await stores[0].create_board("b", "B")
        await stores[1].create_player("b", "p", "P")
        await stores[0].stop()
        # And again on the existing schema: nothing lost, nothing duplicated.
        await stores[2].start()
        assert (await stores[2].get_player("b", "p")).player.name == "P"
        assert stores[2].ready and stores[1].ready
        await stores[2].check()
        r = driver()
        conn = await connect(db.settings)
        try:
            tables = await r.db(db.settings.db).table_list().run(conn)
            indexes = await r.db(db.settings.db).table("players").index_list().run(conn)
        finally:
            await conn.close(noreply_wait=False)
        assert sorted(tables) == ["boards", "players"]
        assert indexes == ["rank", "rank_asc"]
    finally:
        for s in stores:
            await s.stop()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_outside_writes_reach_the_change_stream() -> None:
    from tests.rethink_fixture import connect, driver, rethink_store

    store, cleanup = await rethink_store(reactor, **FAST)
    stream = store.changes()
    r = driver()
    conn = await connect(store.settings)
    try:
        await store.create_board("demo", "Demo")
        await store.create_player("demo", "alice", "Alice")
        first = await next_real_change(stream)
        assert first == Change("demo", "alice", None, Player("demo", "alice", "Alice", 0))
        players = r.db(store.settings.db).table("players")
        # A migration script or the web console: a plain driver update, not the store.
        await players.get("demo/alice").update({"score": r.row["score"] + 41}).run(conn)
        change = await next_real_change(stream)
        assert change == Change("demo", "alice", Player("demo", "alice", "Alice", 0),
                                Player("demo", "alice", "Alice", 41))
        # A document that is no player (junk written by hand) does not break the feed.
        await players.insert({"id": "junk", "whatever": True}).run(conn)
        await players.get("demo/alice").delete().run(conn)
        gone = await next_real_change(stream)
        assert gone == Change("demo", "alice", Player("demo", "alice", "Alice", 41), None)
        # The ranking reads the index, which outside writes keep up to date.
        await players.insert({"id": "demo/bob", "board": "demo", "player": "bob",
                              "name": "Bob", "score": 3}).run(conn)
        view = await store.board_view("demo", 5)
        assert [(s.player.id, s.rank) for s in view.standings] == [("bob", 1)]
    finally:
        stream.close()
        await conn.close(noreply_wait=False)
        await cleanup()


@pytest_twisted.ensureDeferred
async def test_server_restart_fails_fast_then_recovers_with_resync() -> None:
    from tests.rethink_fixture import RethinkStore, database

    # Always the test server: this test stops and restarts the server process it owns.
    db = await database(reactor, test_server=True)
    store = RethinkStore(db.settings, reactor, **FAST)
    await store.start()
    stream = store.changes()
    try:
        await store.create_board("b", "B")
        await store.create_player("b", "p", "P")
        await store.add_score("b", "p", 1)
        pending = stream.next()  # a listener waiting mid-stream
        await db.server.stop()
        await eventually(lambda: not store.ready, "the store to notice the server left")
        failed_already(store.get_player("b", "p"), StoreUnavailable)
        failed_already(store.add_score("b", "p", 1), StoreUnavailable)
        failed_already(store.board_view("b", 5), StoreUnavailable)
        await expect(store.check(), StoreUnavailable)
        # Like a real restart: changes() fails for a while, r.db(x).wait() waits it out.
        await db.server.restart(unavailable_for=0.5)
        await eventually(lambda: store.ready, "the store to reconnect by itself")
        seen = [await pending.addTimeout(10, reactor)]
        while RESYNC not in seen:
            seen.append(await next_change(stream))
        s = await store.add_score("b", "p", 5)
        assert (s.player.score, s.rank) == (6, 1)
        after = await next_real_change(stream)
        assert after.new == Player("b", "p", "P", 6)
        await store.check()
    finally:
        stream.close()
        await store.stop()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_network_loss_in_flight_query_fails_and_reconnect_waits_for_the_clock() -> None:
    """A cut network (works on a real server too). Reconnect timers run on the store's clock."""
    from tests.rethink_fixture import CuttableProxy, RethinkStore, database

    db = await database(reactor)
    proxy = CuttableProxy(db.settings.host, db.settings.port)
    port = proxy.listen(reactor)
    clock = Clock()
    from dataclasses import replace

    store = RethinkStore(replace(db.settings, host="127.0.0.1", port=port), clock,
                         backoff_initial=0.1, backoff_max=0.1)
    await store.start()
    stream = store.changes()
    try:
        await store.create_board("b", "B")
        await store.create_player("b", "p", "P")
        in_flight = store.get_player("b", "p")
        proxy.sever()  # before the query's bytes leave: it can never be answered
        await expect(in_flight, StoreUnavailable)
        await eventually(lambda: not store.ready, "the store to notice")
        failed_already(store.create_player("b", "q", "Q"), StoreUnavailable)
        proxy.restore()
        # Nothing reconnects until the store's clock says so.
        assert not store.ready
        assert clock.getDelayedCalls(), "no reconnect scheduled"

        def tick() -> bool:
            clock.advance(0.05)
            return store.ready

        await eventually(tick, "the store to reconnect")
        seen = [await next_change(stream)]
        while seen[-1] != RESYNC:  # after the changes made before the cut
            seen.append(await next_change(stream))
        assert [c.player for c in seen[:-1]] == ["p"]
        await store.create_player("b", "q", "Q")
        assert (await next_real_change(stream)).player == "q"
    finally:
        stream.close()
        await store.stop()
        await proxy.close()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_stop_while_the_server_is_gone_does_not_hang() -> None:
    from tests.rethink_fixture import RethinkStore, database

    db = await database(reactor, test_server=True)
    store = RethinkStore(db.settings, reactor, **FAST)
    await store.start()
    stream = store.changes()
    pending = stream.next()
    await db.server.stop()
    await eventually(lambda: not store.ready, "the store to notice")
    await store.stop().addTimeout(10, reactor)
    from twisted.internet.defer import CancelledError

    await expect(pending, CancelledError)
    assert not store.ready


@pytest_twisted.ensureDeferred
async def test_start_fails_cleanly_when_unreachable_and_can_be_retried() -> None:
    from tests.rethink_fixture import RethinkStore, database

    db = await database(reactor, test_server=True)
    await db.server.stop()
    store = RethinkStore(db.settings, reactor, **FAST)
    await expect(store.start(), StoreUnavailable)
    assert not store.ready
    await db.server.restart()
    try:
        await store.start()
        assert store.ready
        assert await store.is_empty()
    finally:
        await store.stop()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_unavailable_and_leaves_no_timer() -> None:
    from tests.reqlserver import start_server
    from tests.rethink_fixture import RethinkStore, fresh_db_name

    server = await start_server(reactor, password="right")
    before = set(reactor.getDelayedCalls())  # type: ignore[attr-defined]
    try:
        settings = RethinkSettings(server.host, server.port, fresh_db_name(), "admin", "wrong")
        store = RethinkStore(settings, reactor, **FAST)
        e = await expect(store.start(), StoreUnavailable)
        assert "password" in str(e).lower()
        # README bug 2: the driver's handshake timer must not be left to fire later.
        left = [c for c in reactor.getDelayedCalls()  # type: ignore[attr-defined]
                if c not in before and "_handleHandshakeTimeout" in repr(c)]
        assert left == []
        ok = RethinkStore(replace_password(settings, "right"), reactor, **FAST)
        await ok.start()
        await ok.stop()
    finally:
        await server.stop()


def replace_password(settings: RethinkSettings, password: str) -> RethinkSettings:
    from dataclasses import replace

    return replace(settings, password=password)


@pytest_twisted.ensureDeferred
async def test_half_open_network_is_found_by_timeouts_and_heartbeats() -> None:
    """No RST ever comes: a query times out, an idle feed is caught by its heartbeat, a
    handshake that never completes is given up; all on the store's clock."""
    from dataclasses import replace

    from twisted.internet.task import deferLater

    from tests.rethink_fixture import CuttableProxy, RethinkStore, database

    db = await database(reactor)
    proxy = CuttableProxy(db.settings.host, db.settings.port)
    port = proxy.listen(reactor)
    clock = Clock()
    store = RethinkStore(replace(db.settings, host="127.0.0.1", port=port), clock,
                         heartbeat=15.0, query_timeout=5.0, connect_timeout=3.0,
                         backoff_initial=0.1, backoff_max=0.1)

    async def turn() -> None:  # let the real reactor move bytes
        await deferLater(reactor, 0.05, lambda: None)  # type: ignore[arg-type]

    await store.start()
    stream = store.changes()
    try:
        await store.create_board("b", "B")
        await store.create_player("b", "p", "P")
        proxy.frozen = True
        in_flight = store.get_player("b", "p")
        await turn()
        assert not in_flight.called
        clock.advance(5.0)  # the query timeout
        await expect(in_flight, StoreUnavailable)
        assert not store.ready
        failed_already(store.board_view("b", 5), StoreUnavailable)
        # The feed connection is idle, so only its heartbeat can find out.
        for _ in range(4):
            clock.advance(5.0)  # heartbeat at 15 s, its answer due 5 s later; meanwhile
            await turn()  # reconnects of the query link hang in the handshake and time out
        proxy.frozen = False

        def tick() -> bool:
            clock.advance(0.05)
            return store.ready

        await eventually(tick, "the store to reconnect")
        seen = [await next_change(stream)]
        while seen[-1] != RESYNC:
            seen.append(await next_change(stream))
        assert (await store.get_player("b", "p")).rank == 1

        def handshake_timers() -> list[Any]:
            return [c for c in reactor.getDelayedCalls()  # type: ignore[attr-defined]
                    if "_handleHandshakeTimeout" in repr(c)]

        # Given-up handshakes were aborted, their driver timers disarmed.
        await eventually(lambda: not handshake_timers(), "no armed handshake timer")
    finally:
        stream.close()
        await store.stop()
        await proxy.close()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_schema_dropped_under_a_running_store_is_recreated() -> None:
    from tests.rethink_fixture import connect, driver, rethink_store

    store, cleanup = await rethink_store(reactor, **FAST)
    stream = store.changes()
    r = driver()
    conn = await connect(store.settings)
    try:
        await store.create_board("b", "B")
        await r.db(store.settings.db).table_drop("players").run(conn)
        seen = [await next_change(stream)]  # the feed broke, came back, and says so
        while seen[-1] != RESYNC:
            seen.append(await next_change(stream))
        await eventually(lambda: store.ready, "the store to recover")
        await store.create_player("b", "p", "P")
        s = await store.add_score("b", "p", 2)
        assert (s.player.score, s.rank) == (2, 1)
        assert (await next_real_change(stream)).player == "p"
    finally:
        stream.close()
        await conn.close(noreply_wait=False)
        await cleanup()


def test_player_keys_fit_rethinkdb_and_stay_unique() -> None:
    from leaderboard.store.rethink import player_key

    assert player_key("demo", "alice") == "demo/alice"
    b, p = "b" * 64, "p" * 64
    long_keys = {player_key(b, p), player_key(b, p[:-1] + "q"), player_key(b, "p" * 63)}
    assert len(long_keys) == 3
    assert all(len(k) <= 127 for k in long_keys)
    assert player_key(b, p) == player_key(b, p)  # stable: it is how a player is found
    # A document written by hand without board/player fields and a digest key is skipped
    # rather than misread.
    assert player_from_doc({"id": player_key(b, p), "name": "P", "score": 1}) is None


@pytest_twisted.ensureDeferred
async def test_longest_ids_work(store: Any) -> None:
    """Ids of 64 characters on both sides (a 129-character plain key) on every store kind."""
    b, p = "B" * 64, "p" * 64
    await store.create_board(b, "Long")
    await store.create_player(b, p, "Long P")
    await store.create_player(b, p[:-1] + "q", "Long Q")
    s = await store.add_score(b, p, 3)
    assert (s.player.id, s.player.board, s.player.score, s.rank) == (p, b, 3, 1)
    view = await store.board_view(b, 5)
    assert [st.player.id for st in view.standings] == [p, p[:-1] + "q"]


# -- board options, deletes and caches ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_concurrent_first_submissions_create_once_and_lose_nothing(store: Any) -> None:
    """Submissions that create a missing player race each other: one creates it, the others
    apply the operator to it (every store kind)."""
    await store.create_board("b", "B")
    results = await gatherResults([store.submit_score("b", "p", 1, "P") for _ in range(30)])
    assert sorted(s.player.score for s in results) == list(range(1, 31))
    assert (await store.get_player("b", "p")).player == Player("b", "p", "P", 30)


@pytest_twisted.ensureDeferred
async def test_metadata_round_trips_exactly_and_is_not_shared(store: Any) -> None:
    meta = {"big": 2**60 + 1, "$reql_type$": "TIME", "nested": {"x": [1, 2.5, None]}}
    await store.create_board("m", "M", metadata=meta)
    got = await store.get_board("m")
    assert got.metadata == meta
    got.metadata["big"] = 0  # a caller's copy: the store's view stays the same
    assert (await store.get_board("m")).metadata == meta
    assert (await store.board_view("m", 5)).board.metadata == meta


async def _outside(store: Any) -> tuple[Any, Any, Any]:
    from tests.rethink_fixture import connect, driver

    r = driver()
    conn = await connect(store.settings)
    return r, conn, r.db(store.settings.db)


@pytest_twisted.ensureDeferred
async def test_board_deleted_and_recreated_elsewhere_is_announced_and_reread() -> None:
    """Another process (here a plain driver) deletes a board this store has cached and
    recreates it ascending: listeners hear of the deletion, and the store ranks the new
    board ascending."""
    from tests.rethink_fixture import rethink_store

    store, cleanup = await rethink_store(reactor, **FAST)
    stream = store.changes()
    r, conn, db = await _outside(store)
    try:
        await store.create_board("b", "B")
        for pid, score in (("lo", 1), ("hi", 9)):
            await store.submit_score("b", pid, score, pid)
        assert [s.player.id for s in (await store.board_view("b", 5)).standings] == ["hi", "lo"]
        await db.table("boards").get("b").delete().run(conn)
        await db.table("boards").insert({"id": "b", "name": "B2", "order": "asc",
                                         "operator": "set", "metadata": "{}"}).run(conn)
        while (await next_real_change(stream)) != Change("b"):
            pass
        board = await store.get_board("b")
        assert (board.name, board.order, board.operator) == ("B2", "asc", "set")
        assert [s.player.id for s in (await store.board_view("b", 5)).standings] == ["lo", "hi"]
        # An empty board deleted from outside is announced too.
        await store.create_board("e", "E")
        await db.table("boards").get("e").delete().run(conn)
        while (await next_real_change(stream)) != Change("e"):
            pass
        await expect(store.get_board("e"), NotFound)
    finally:
        stream.close()
        await conn.close(noreply_wait=False)
        await cleanup()


@pytest_twisted.ensureDeferred
async def test_existing_database_gains_the_asc_index_and_old_boards_work() -> None:
    """A database made by the previous version: only the ``rank`` index, boards without
    options. Starting the store adds ``rank_asc``; the old board reads as desc / incr."""
    from tests.rethink_fixture import RethinkStore, connect, database, driver

    dbinfo = await database(reactor)
    r = driver()
    conn = await connect(dbinfo.settings)
    store = RethinkStore(dbinfo.settings, reactor, **FAST)
    try:
        await r.db_create(dbinfo.settings.db).run(conn)
        db = r.db(dbinfo.settings.db)
        await db.table_create("boards").run(conn)
        await db.table_create("players").run(conn)
        await db.table("players").index_create(
            "rank", lambda p: [p["board"], r.expr(0) - p["score"], p["player"]]
        ).run(conn)
        await db.table("players").index_wait("rank").run(conn)
        await db.table("boards").insert({"id": "old", "name": "Old"}).run(conn)
        await db.table("players").insert([
            {"id": f"old/{pid}", "board": "old", "player": pid, "name": pid, "score": score}
            for pid, score in (("a", 3), ("b", 7))
        ]).run(conn)
        await store.start()
        assert await db.table("players").index_list().run(conn) == ["rank", "rank_asc"]
        assert await store.get_board("old") == Board("old", "Old", "desc", "incr", {})
        s = await store.submit_score("old", "a", 5)
        assert (s.player.score, s.rank) == (8, 1)
        rows = await store.list_players("old", 0, 10)
        assert [(x.player.id, x.rank) for x in rows] == [("a", 1), ("b", 2)]
        await store.create_board("t", "T", "asc")
        await store.submit_score("t", "x", 5, "X")
        await store.submit_score("t", "y", 2, "Y")
        assert [(x.player.id, x.rank) for x in await store.around("t", "x", 1)] == [
            ("y", 1), ("x", 2)
        ]
    finally:
        await store.stop()
        await conn.close(noreply_wait=False)
        await dbinfo.close()


@pytest_twisted.ensureDeferred
async def test_big_board_is_deleted_in_batches_and_leftovers_are_cleaned() -> None:
    from leaderboard.store.rethink import _DELETE_BATCH
    from tests.rethink_fixture import rethink_store

    store, cleanup = await rethink_store(reactor, **FAST)
    r, conn, db = await _outside(store)
    players = db.table("players")

    def docs(board: str, n: int) -> list[dict[str, Any]]:
        return [{"id": f"{board}/p{i}", "board": board, "player": f"p{i}", "name": "P",
                 "score": i % 7} for i in range(n)]

    try:
        await store.create_board("big", "Big")
        await players.insert(docs("big", 2 * _DELETE_BATCH + 10)).run(conn)
        assert [b.players for b in await store.list_boards(0, 5)] == [2 * _DELETE_BATCH + 10]
        await store.delete_board("big")
        assert await players.count().run(conn) == 0
        # Players left without a board (an interrupted delete): deleting again cleans up.
        await players.insert(docs("ghost", 3)).run(conn)
        await expect(store.delete_board("ghost"), NotFound)
        assert await players.count().run(conn) == 0
        await store.create_board("ghost", "Ghost")
        assert (await store.board_view("ghost", 5)).standings == ()
    finally:
        await conn.close(noreply_wait=False)
        await cleanup()


@pytest_twisted.ensureDeferred
async def test_writes_check_the_board_in_the_same_query() -> None:
    """A board deleted elsewhere while this store still has it cached: a write that would
    create a player fails with NotFound instead of leaving an orphan."""
    from tests.rethink_fixture import rethink_store

    store, cleanup = await rethink_store(reactor, **FAST)
    r, conn, db = await _outside(store)
    try:
        board = await store.create_board("b", "B")

        async def stale(board_id: str) -> Board:  # the cache, before the feed tells it
            return board

        store._board = stale  # type: ignore[method-assign]  # noqa: SLF001
        await db.table("boards").get("b").delete().run(conn)
        await expect(store.create_player("b", "p", "P"), NotFound)
        await expect(store.submit_score("b", "q", 1, "Q"), NotFound)
        assert await db.table("players").count().run(conn) == 0
    finally:
        await conn.close(noreply_wait=False)
        await cleanup()
