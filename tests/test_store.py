"""The store behaviour suite: written once, run on every store kind (see conftest.store)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from leaderboard.errors import AlreadyExists, NotFound, ScoreOutOfRange
from leaderboard.model import MAX_SCORE, Player
from leaderboard.store import Change


async def expect_error(d: Deferred[Any], kind: type[Exception]) -> Exception:
    try:
        await d
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


async def next_change(stream: Any, timeout: float = 5.0) -> Change:
    d = stream.next()
    d.addTimeout(timeout, reactor)
    return await d  # type: ignore[no-any-return]


async def board_with(store: Any, board: str, scores: dict[str, int]) -> None:
    await store.create_board(board, board.title())
    for pid, score in scores.items():
        await store.create_player(board, pid, pid.title())
        if score:
            await store.add_score(board, pid, score)


@pytest_twisted.ensureDeferred
async def test_empty_then_not(store: Any) -> None:
    assert await store.is_empty() is True
    await store.create_board("b1", "Board One")
    assert await store.is_empty() is False


@pytest_twisted.ensureDeferred
async def test_board_create_get_duplicate_missing(store: Any) -> None:
    board = await store.create_board("b1", "Board One")
    assert (board.id, board.name) == ("b1", "Board One")
    again = await store.get_board("b1")
    assert again == board
    await expect_error(store.create_board("b1", "Other"), AlreadyExists)
    assert (await store.get_board("b1")).name == "Board One"
    await expect_error(store.get_board("nope"), NotFound)


@pytest_twisted.ensureDeferred
async def test_players_are_per_board(store: Any) -> None:
    await store.create_board("a", "A")
    await store.create_board("b", "B")
    await store.create_player("a", "alice", "Alice")
    await store.create_player("b", "alice", "Alice B")
    await store.add_score("a", "alice", 5)
    a = await store.get_player("a", "alice")
    b = await store.get_player("b", "alice")
    assert (a.player.score, a.player.name, a.rank) == (5, "Alice", 1)
    assert (b.player.score, b.player.name, b.player.board) == (0, "Alice B", "b")
    await expect_error(store.create_player("a", "alice", "Again"), AlreadyExists)
    await expect_error(store.create_player("zzz", "alice", "Alice"), NotFound)
    await expect_error(store.get_player("a", "bob"), NotFound)
    await expect_error(store.get_player("zzz", "alice"), NotFound)


@pytest_twisted.ensureDeferred
async def test_add_score_returns_score_and_rank(store: Any) -> None:
    await board_with(store, "b", {"x": 10, "y": 20})
    s = await store.add_score("b", "x", 15)
    assert (s.player.id, s.player.score, s.rank, s.player.name) == ("x", 25, 1, "X")
    s = await store.add_score("b", "x", -30)
    assert (s.player.score, s.rank) == (-5, 2)
    await expect_error(store.add_score("b", "nobody", 1), NotFound)
    await expect_error(store.add_score("nope", "x", 1), NotFound)


@pytest_twisted.ensureDeferred
async def test_score_range_is_refused_and_nothing_changes(store: Any) -> None:
    await board_with(store, "b", {"x": 0})
    await store.add_score("b", "x", 10**9)
    # Drive the score to the edge in big steps is slow; use the largest allowed amount
    # against a score brought close to the bound by many adds would be slower still, so
    # check both edges relative to the current score instead.
    await expect_error(store.add_score("b", "x", MAX_SCORE), ScoreOutOfRange)
    assert (await store.get_player("b", "x")).player.score == 10**9
    await store.add_score("b", "x", -(10**9))
    await expect_error(store.add_score("b", "x", -MAX_SCORE - 1), ScoreOutOfRange)
    assert (await store.get_player("b", "x")).player.score == 0


@pytest_twisted.ensureDeferred
async def test_top_n_order_ties_and_competition_rank(store: Any) -> None:
    await board_with(store, "b", {"dave": 7, "carol": 12, "bob": 7, "alice": 10, "erin": 3})
    await board_with(store, "other", {"zed": 100})
    view = await store.board_view("b", 5)
    assert view.board.id == "b" and view.board.name == "B"
    got = [(s.player.id, s.player.score, s.rank) for s in view.standings]
    # Score descending; ties by player id ascending; ranks "1224".
    assert got == [
        ("carol", 12, 1),
        ("alice", 10, 2),
        ("bob", 7, 3),
        ("dave", 7, 3),
        ("erin", 3, 5),
    ]
    top3 = await store.board_view("b", 3)
    assert [(s.player.id, s.rank) for s in top3.standings] == [
        ("carol", 1),
        ("alice", 2),
        ("bob", 3),
    ]
    dave = await store.get_player("b", "dave")
    assert dave.rank == 3
    erin = await store.get_player("b", "erin")
    assert erin.rank == 5
    empty = await store.create_board("e", "Empty")
    assert (await store.board_view(empty.id, 5)).standings == ()
    await expect_error(store.board_view("nope", 5), NotFound)


@pytest_twisted.ensureDeferred
async def test_list_boards_pages_by_id_with_counts(store: Any) -> None:
    await board_with(store, "c", {"p": 0})
    await board_with(store, "a", {"p": 0, "q": 0})
    await board_with(store, "b", {})
    page1 = await store.list_boards(0, 2)
    assert [(b.id, b.name, b.players) for b in page1] == [("a", "A", 2), ("b", "B", 0)]
    page2 = await store.list_boards(2, 2)
    assert [(b.id, b.players) for b in page2] == [("c", 1)]


@pytest_twisted.ensureDeferred
async def test_changes_carry_old_and_new_rows(store: Any) -> None:
    await store.create_board("b", "B")
    stream = store.changes()
    try:
        await store.create_player("b", "p", "P")
        await store.add_score("b", "p", 3)
        seen: list[Change] = []
        while len([c for c in seen if c.board is not None]) < 2:
            seen.append(await next_change(stream))
        real = [c for c in seen if c.board is not None]
        assert real[0] == Change("b", "p", None, Player("b", "p", "P", 0))
        assert real[1] == Change("b", "p", Player("b", "p", "P", 0), Player("b", "p", "P", 3))
    finally:
        stream.close()


@pytest_twisted.ensureDeferred
async def test_closed_stream_fails_pending_next(store: Any) -> None:
    stream = store.changes()
    d = stream.next()
    stream.close()
    from twisted.internet.defer import CancelledError

    await expect_error(d, CancelledError)


@pytest_twisted.ensureDeferred
async def test_200_concurrent_adds_are_atomic(store: Any) -> None:
    await board_with(store, "b", {"p": 0})
    await gatherResults([store.add_score("b", "p", 1) for _ in range(200)])
    assert (await store.get_player("b", "p")).player.score == 200


# -- board options, operators, rankings, renames and deletes (every store kind) -----------


async def ranking(store: Any, board: str) -> list[tuple[str, int, int]]:
    rows = await store.list_players(board, 0, 100)
    return [(s.player.id, s.player.score, s.rank) for s in rows]


@pytest_twisted.ensureDeferred
async def test_board_options_are_kept(store: Any) -> None:
    b = await store.create_board("t", "Times", "asc", "best", {"unit": "ms", "laps": [1, 2]})
    assert (b.order, b.operator, b.metadata) == ("asc", "best", {"unit": "ms", "laps": [1, 2]})
    again = await store.get_board("t")
    assert again == b
    plain = await store.create_board("p", "Plain")
    assert (plain.order, plain.operator, plain.metadata) == ("desc", "incr", {})


@pytest_twisted.ensureDeferred
async def test_ascending_board_ranks_lowest_first(store: Any) -> None:
    await store.create_board("t", "Times", "asc", "set")
    for pid, score in {"c": 30, "a": 10, "b": 10, "d": -5}.items():
        await store.submit_score("t", pid, score, pid.upper())
    assert await ranking(store, "t") == [("d", -5, 1), ("a", 10, 2), ("b", 10, 2), ("c", 30, 4)]
    view = await store.board_view("t", 2)
    assert [(s.player.id, s.rank) for s in view.standings] == [("d", 1), ("a", 2)]
    assert (await store.get_player("t", "c")).rank == 4
    s = await store.add_score("t", "c", -40)
    assert (s.player.score, s.rank) == (-10, 1)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "order,operator,submissions,final",
    [
        ("desc", "incr", [5, 7, -2], 10),
        ("desc", "set", [5, 7, -2], -2),
        ("desc", "best", [5, 7, -2], 7),
        ("asc", "best", [5, 7, -2], -2),
        ("asc", "best", [5, 3, 9], 3),
        ("asc", "set", [5, 3, 9], 9),
    ],
)
async def test_submit_score_applies_the_operator(
    store: Any, order: str, operator: str, submissions: list[int], final: int
) -> None:
    await store.create_board("b", "B", order, operator)
    first = await store.submit_score("b", "p", submissions[0], "Pat")
    assert (first.player.name, first.player.score, first.rank) == ("Pat", submissions[0], 1)
    for score in submissions[1:]:
        result = await store.submit_score("b", "p", score)
    assert result.player.score == final
    assert (await store.get_player("b", "p")).player.score == final


@pytest_twisted.ensureDeferred
async def test_submit_score_needs_a_name_for_a_new_player(store: Any) -> None:
    await store.create_board("b", "B")
    await expect_error(store.submit_score("b", "nobody", 5), NotFound)
    await expect_error(store.submit_score("zzz", "p", 5, "P"), NotFound)
    s = await store.submit_score("b", "p", 5, "P")
    await expect_error(store.submit_score("b", "p", MAX_SCORE, "P"), ScoreOutOfRange)
    assert (await store.get_player("b", "p")).player.score == s.player.score == 5


@pytest_twisted.ensureDeferred
async def test_list_players_pages_the_whole_ranking(store: Any) -> None:
    scores = {f"p{i:02d}": (i * 7) % 10 for i in range(25)}
    await board_with(store, "b", scores)
    everything = await ranking(store, "b")
    assert len(everything) == 25
    paged: list[tuple[str, int, int]] = []
    for offset in range(0, 25, 10):
        rows = await store.list_players("b", offset, 10)
        paged += [(s.player.id, s.player.score, s.rank) for s in rows]
    assert paged == everything
    expected = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [pid for pid, _, _ in everything] == [pid for pid, _ in expected]
    for _pid, score, rank in everything:
        assert rank == 1 + sum(1 for s in scores.values() if s > score)
    assert await store.list_players("b", 100, 10) == []
    await expect_error(store.list_players("zzz", 0, 10), NotFound)


@pytest_twisted.ensureDeferred
async def test_around_gives_neighbours_with_ranks(store: Any) -> None:
    await board_with(store, "b", {"a": 50, "b": 40, "c": 40, "d": 30, "e": 20, "f": 10})
    rows = await store.around("b", "d", 2)
    assert [(s.player.id, s.rank) for s in rows] == [("b", 2), ("c", 2), ("d", 4), ("e", 5), ("f", 6)]
    top = await store.around("b", "a", 1)
    assert [(s.player.id, s.rank) for s in top] == [("a", 1), ("b", 2)]
    alone = await store.around("b", "c", 0)
    assert [(s.player.id, s.rank) for s in alone] == [("c", 2)]
    await expect_error(store.around("b", "zzz", 1), NotFound)


@pytest_twisted.ensureDeferred
async def test_rename_keeps_score_and_announces(store: Any) -> None:
    await board_with(store, "b", {"p": 9})
    stream = store.changes()
    try:
        s = await store.rename_player("b", "p", "New Name")
        assert (s.player.name, s.player.score, s.rank) == ("New Name", 9, 1)
        assert (await store.get_player("b", "p")).player.name == "New Name"
        change = await next_change(stream)
        while change.board is None:
            change = await next_change(stream)
        assert change.new == Player("b", "p", "New Name", 9)
    finally:
        stream.close()
    await expect_error(store.rename_player("b", "zzz", "X"), NotFound)


@pytest_twisted.ensureDeferred
async def test_delete_player_and_board(store: Any) -> None:
    await board_with(store, "b", {"p": 9, "q": 3})
    await store.delete_player("b", "p")
    await expect_error(store.get_player("b", "p"), NotFound)
    assert await ranking(store, "b") == [("q", 3, 1)]
    await expect_error(store.delete_player("b", "p"), NotFound)
    stream = store.changes()
    try:
        await store.delete_board("b")
        change = await next_change(stream)
        while change.board is None:
            change = await next_change(stream)
        assert change.board == "b"
    finally:
        stream.close()
    await expect_error(store.get_board("b"), NotFound)
    await expect_error(store.get_player("b", "q"), NotFound)
    await expect_error(store.delete_board("b"), NotFound)
    # The id is free again, and the new board starts empty.
    await store.create_board("b", "Again")
    assert (await store.board_view("b", 5)).standings == ()


@pytest_twisted.ensureDeferred
async def test_a_failing_write_among_concurrent_ones_spoils_nothing(store: Any) -> None:
    await board_with(store, "b", {"p": 0, "q": 0})
    from twisted.internet.defer import DeferredList

    results = await DeferredList(
        [
            store.add_score("b", "p", 1),
            store.add_score("b", "nobody", 1),
            store.add_score("b", "q", MAX_SCORE),
            store.add_score("b", "q", 1),
            store.add_score("b", "p", 1),
        ],
        consumeErrors=True,
    )
    oks = [ok for ok, _ in results]
    assert oks == [True, False, True, False, True]
    assert results[1][1].check(NotFound) and results[3][1].check(ScoreOutOfRange)
    assert (await store.get_player("b", "p")).player.score == 2
    assert (await store.get_player("b", "q")).player.score == MAX_SCORE
