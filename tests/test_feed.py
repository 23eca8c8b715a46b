"""The feed loop, in memory with a Clock: coalescing, top-N filtering, failures, resync."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from leaderboard.errors import StoreUnavailable
from leaderboard.feed.loop import BoardFeed
from leaderboard.model import Event
from leaderboard.service import seed_demo
from leaderboard.store import RESYNC, Change
from leaderboard.store._base import ChangeQueue
from leaderboard.store.sqlite import SqliteStore
from tests.test_api import done


class RecordingSink:
    def __init__(self, boards: set[str] | None = None) -> None:
        self.events: list[tuple[str, Event]] = []
        self.only = boards

    def wants(self, board: str) -> bool:
        return self.only is None or board in self.only

    def publish(self, board: str, event: Event) -> None:
        self.events.append((board, event))

    def scores(self, i: int = -1) -> list[tuple[str, int]]:
        import json

        data = json.loads(self.events[i][1].data)
        return [(p["id"], p["score"]) for p in data["players"]]


class CountingStore(SqliteStore):
    """The in-memory SQLite store, counting board reads and failing them on demand."""

    def __init__(self) -> None:
        super().__init__(":memory:", Clock(), inline=True)  # type: ignore[arg-type]
        self.view_reads = 0
        self.fail_reads = 0

    def board_view(self, board_id: str, limit: int) -> Deferred[Any]:
        self.view_reads += 1
        if self.fail_reads:
            self.fail_reads -= 1
            return fail(StoreUnavailable("database away"))
        return super().board_view(board_id, limit)


@pytest.fixture
def store() -> Any:
    s = CountingStore()
    done(s.start())
    done(seed_demo(s))
    yield s
    done(s.stop())


def make_feed(store: Any, *sinks: Any, **kw: Any) -> tuple[BoardFeed, Clock]:
    clock = Clock()
    feed = BoardFeed(store, list(sinks), clock, **kw)
    feed.startService()
    return feed, clock


def test_a_burst_costs_one_read_and_one_event_with_the_final_state(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink, window=0.05)
    for _ in range(100):
        done(store.add_score("demo", "butters", 1))
    assert store.view_reads == 0 and sink.events == []
    clock.advance(0.05)
    assert store.view_reads == 1
    assert len(sink.events) == 1
    assert sink.scores()[0] == ("butters", 104)
    feed.stopService()


def test_writes_spread_over_time_give_at_most_one_event_per_window(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink, window=0.05)
    # 1,000 writes a second for one second, one every millisecond.
    for _ in range(1000):
        done(store.add_score("demo", "eric", 1))
        clock.advance(0.001)
    clock.advance(0.05)
    assert 15 <= len(sink.events) <= 21  # about one per 50 ms window: at most 20 a second
    assert store.view_reads == len(sink.events)
    assert ("eric", 1006) in sink.scores()
    feed.stopService()


def test_unchanged_top_n_sends_nothing(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink, top_n=3)
    done(store.add_score("demo", "stan", 1))
    clock.advance(1)
    assert len(sink.events) == 1
    done(store.add_score("demo", "butters", 1))  # 5th place moves, top 3 does not
    clock.advance(1)
    assert len(sink.events) == 1
    assert store.view_reads == 2
    feed.stopService()


def test_boards_no_sink_wants_are_not_read(store: CountingStore) -> None:
    sink = RecordingSink(boards={"other"})
    feed, clock = make_feed(store, sink)
    done(store.add_score("demo", "stan", 1))
    clock.advance(1)
    assert store.view_reads == 0 and sink.events == []
    feed.stopService()


def test_failed_read_is_retried_with_back_off(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink, window=0.05, max_backoff=1.0)
    store.fail_reads = 3
    done(store.add_score("demo", "kenny", 50))
    clock.advance(0.05)
    assert store.view_reads == 1 and sink.events == []
    clock.advance(0.1)  # first retry after 0.1 s
    assert store.view_reads == 2
    clock.advance(0.2)  # then 0.2 s
    assert store.view_reads == 3
    clock.advance(0.4)  # then 0.4 s: this read succeeds
    assert store.view_reads == 4
    assert sink.scores()[0] == ("kenny", 58)
    feed.stopService()


def test_a_failing_sink_does_not_stop_the_others_or_the_loop(store: CountingStore) -> None:
    class Broken(RecordingSink):
        def publish(self, board: str, event: Event) -> None:
            raise RuntimeError("sink down")

    good = RecordingSink()
    feed, clock = make_feed(store, Broken(), good)
    done(store.add_score("demo", "kyle", 5))
    clock.advance(1)
    done(store.add_score("demo", "kyle", 5))
    clock.advance(1)
    assert len(good.events) == 2
    assert good.scores()[0] == ("kyle", 20)
    feed.stopService()


class FlakyStreams:
    """A store wrapper whose change streams can be broken from the test."""

    def __init__(self, store: CountingStore) -> None:
        self.store = store
        self.queues: list[ChangeQueue] = []
        self.opened = 0

    def changes(self) -> ChangeQueue:
        self.opened += 1
        q = ChangeQueue()
        self.queues.append(q)
        return q

    def board_view(self, board_id: str, limit: int) -> Deferred[Any]:
        return self.store.board_view(board_id, limit)


def test_a_broken_stream_is_reopened_and_followed_by_a_resync(store: CountingStore) -> None:
    flaky = FlakyStreams(store)
    sink = RecordingSink()
    feed, clock = make_feed(flaky, sink, window=0.05)
    flaky.queues[0].put(Change("demo", "stan"))
    clock.advance(0.05)
    assert len(sink.events) == 1
    # The stream dies; meanwhile the board changes and nobody hears of it.
    flaky.queues[0].fail(StoreUnavailable("feed connection lost"))
    done(store.add_score("demo", "stan", 100))
    assert flaky.opened == 1
    clock.advance(0.1)  # back-off, then re-open and resync every watched board
    assert flaky.opened == 2
    clock.advance(0.05)
    assert sink.scores()[0] == ("stan", 112)
    feed.stopService()


def test_resync_marker_rereads_watched_boards(store: CountingStore) -> None:
    flaky = FlakyStreams(store)
    sink = RecordingSink()
    feed, clock = make_feed(flaky, sink)
    flaky.queues[0].put(Change("demo", "stan"))
    clock.advance(1)
    done(store.add_score("demo", "eric", 100))
    flaky.queues[0].put(RESYNC)
    clock.advance(1)
    assert len(sink.events) == 2 and sink.scores()[0] == ("eric", 106)
    feed.stopService()


def test_stop_cancels_everything(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink)
    done(store.add_score("demo", "stan", 1))
    feed.stopService()
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    assert sink.events == []


def test_latest_is_known_only_while_it_is_current(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink, window=0.05)
    assert feed.latest("demo") is None  # never read
    done(store.add_score("demo", "stan", 1))
    assert feed.latest("demo") is None  # a change is waiting
    clock.advance(0.05)
    assert feed.latest("demo") == sink.events[-1][1]
    reads = store.view_reads
    assert feed.latest("demo") is not None and store.view_reads == reads  # no read to answer
    done(store.add_score("demo", "stan", 1))
    assert feed.latest("demo") is None
    clock.advance(0.05)
    assert feed.latest("demo") == sink.events[-1][1]
    feed.stopService()
    assert feed.latest("demo") is None  # no stream: nothing is known to be current


def test_latest_is_forgotten_when_no_sink_follows_the_board(store: CountingStore) -> None:
    sink = RecordingSink()
    feed, clock = make_feed(store, sink)
    done(store.add_score("demo", "stan", 1))
    clock.advance(1)
    assert feed.latest("demo") is not None
    sink.only = set()  # the last listener left
    done(store.add_score("demo", "stan", 1))  # a change nobody follows: not read
    clock.advance(1)
    assert feed.latest("demo") is None
    feed.stopService()
