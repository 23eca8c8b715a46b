# -*- test-case-name: tests.test_bench_smoke -*-
"""An SSE load client process: holds many listeners on raw sockets, timed by a control pipe.

Run by the benchmarks, not by hand: ``python bench/sse_load.py`` reads one JSON command a
line on stdin and answers one JSON line on stdout. It exits when stdin closes, on
``{"cmd": "close"}``, or after ``--max-seconds``.

Commands:

- ``connect``: ``url``, ``n``; ``rate`` (connections opened per second, 0: as fast as
  ``inflight`` allows), ``inflight`` (handshakes pending at once, 0: no cap), ``timeout``.
  A listener is admitted once it has a 200 and its first event. Answers the counts.
- ``reset``: forget the events received so far (connections stay open).
- ``wait``: ``score`` (and ``key``, the player id), ``timeout``: until every open listener
  has seen an event whose player score is at least ``score``.
- ``latency``: ``writes`` ``[[score, t], ...]`` (``t`` a ``time.monotonic()`` of the
  writer's process: CLOCK_MONOTONIC is machine-wide): for each listener and write, the
  first receipt of an event with a score >= that write's, minus ``t`` (seconds), and how
  many listener-writes had no such event.
- ``rates``: events per listener since the last ``reset`` (mean, max, and the most any
  listener got in one second), and arrivals over time in 100 ms bins.
- ``close``: close every connection and exit.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from bisect import bisect_left
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import protocol
from twisted.protocols.basic import LineReceiver


class Listener(protocol.Protocol):
    """One SSE stream: parses the status, de-chunks, and timestamps each event's id."""

    transport: Any

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.status = 0
        self.head = b""
        self.in_body = False
        self.chunked = False
        self.raw = b""          # undecoded body bytes (chunked framing)
        self.chunk_left = 0     # data bytes left in the current chunk
        self.skip_crlf = 0      # framing bytes to drop after a chunk's data
        self.sse = b""          # decoded SSE text not yet split into events
        self.events: list[tuple[float, str]] = []
        self.admitted = False
        self.gone = False

    def connectionMade(self) -> None:
        self.transport.write(self.pool.request)

    def dataReceived(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            self.head = b""
            self.in_body = True
            first = head.split(b"\r\n", 1)[0].split(b" ")
            self.status = int(first[1]) if len(first) > 1 and first[1].isdigit() else 0
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            if self.status != 200:
                self.pool.failed(self, f"status {self.status}")
                self.transport.loseConnection()
                return
        if self.chunked:
            self.raw += data
            data = self._dechunk()
        if data:
            self.sse += data
            self._events(now)

    def _dechunk(self) -> bytes:
        out = []
        raw = self.raw
        while raw:
            if self.skip_crlf:
                cut = min(self.skip_crlf, len(raw))
                raw = raw[cut:]
                self.skip_crlf -= cut
                continue
            if self.chunk_left == 0:
                end = raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(raw[:end].split(b";", 1)[0] or b"0", 16)
                raw = raw[end + 2:]
                if size == 0:
                    raw = b""
                    break
                self.chunk_left = size
            piece = raw[: self.chunk_left]
            out.append(piece)
            raw = raw[len(piece):]
            self.chunk_left -= len(piece)
            if self.chunk_left == 0:
                self.skip_crlf = 2
        self.raw = raw
        return b"".join(out)

    def _events(self, now: float) -> None:
        blocks = self.sse.split(b"\n\n")
        self.sse = blocks.pop()
        for block in blocks:
            if not block or block.startswith(b":"):
                continue
            event_id = ""
            data = b""
            for line in block.split(b"\n"):
                if line.startswith(b"id: "):
                    event_id = line[4:].decode("ascii", "replace")
                elif line.startswith(b"data: "):
                    data = line[6:]
            self.pool.learn(event_id, data)
            self.events.append((now, event_id))
            if not self.admitted:
                self.admitted = True
                self.pool.admit(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.gone = True
        if not self.admitted:
            self.pool.failed(self, "closed before the first event"
                             if self.status in (0, 200) else f"status {self.status}")
        else:
            self.pool.lost += 1


class Pool(protocol.ClientFactory):
    """The listeners of one ``connect``, and what they have seen."""

    def __init__(self, reactor: Any, url: str, key: str) -> None:
        self.reactor = reactor
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.key = key
        self.listeners: list[Listener] = []
        self.scores: dict[str, float] = {}
        self.admitted = 0
        self.failures: dict[str, int] = {}
        self.lost = 0
        self.pending = 0
        self.on_settle: Any = None

    def buildProtocol(self, addr: Any) -> Listener:
        listener = Listener(self)
        self.listeners.append(listener)
        return listener

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self._count(reason.getErrorMessage()[:80])

    def learn(self, event_id: str, data: bytes) -> None:
        if event_id in self.scores:
            return
        score = float("nan")
        try:
            for player in json.loads(data).get("players", []):
                if player.get("id") == self.key:
                    score = float(player["score"])
        except (ValueError, AttributeError):
            pass
        self.scores[event_id] = score

    def admit(self, listener: Listener) -> None:
        self.admitted += 1
        self._settled()

    def failed(self, listener: Listener, why: str) -> None:
        if listener.admitted or getattr(listener, "_counted", False):
            return
        listener._counted = True  # type: ignore[attr-defined]
        self._count(why)

    def _count(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1
        self._settled()

    def _settled(self) -> None:
        self.pending -= 1
        if self.on_settle is not None:
            self.on_settle()

    def open(self) -> list[Listener]:
        return [x for x in self.listeners if x.admitted and not x.gone]

    def score_of(self, event_id: str) -> float:
        return self.scores.get(event_id, float("nan"))


class Control(LineReceiver):
    """The command pipe: one JSON command per line in, one JSON answer per line out."""

    transport: Any

    delimiter = b"\n"
    MAX_LENGTH = 1 << 26

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.pool: Pool | None = None

    def answer(self, value: dict[str, Any]) -> None:
        self.transport.write(json.dumps(value).encode() + b"\n")

    def lineReceived(self, line: bytes) -> None:
        if not line.strip():
            return
        command = json.loads(line)
        handler = getattr(self, "do_" + command.pop("cmd"))
        handler(**command)

    def connectionLost(self, reason: Any = None) -> None:
        if self.reactor.running:
            self.reactor.stop()

    # -- commands ---------------------------------------------------------------------------

    def do_connect(self, url: str, n: int, rate: float = 0.0, inflight: int = 0,
                   timeout: float = 120.0, key: str = "p1") -> None:
        pool = self.pool = Pool(self.reactor, url, key)
        began = time.monotonic()
        state = {"started": 0, "done": False}
        deadline = self.reactor.callLater(timeout, lambda: finish(timed_out=True))

        def finish(timed_out: bool = False) -> None:
            if state["done"]:
                return
            state["done"] = True
            if deadline.active():
                deadline.cancel()
            seconds = time.monotonic() - began
            self.answer({"admitted": pool.admitted, "failed": sum(pool.failures.values()),
                         "failures": pool.failures, "timed_out": timed_out,
                         "attempted": state["started"], "seconds": round(seconds, 3),
                         "admitted_per_s": round(pool.admitted / seconds, 1) if seconds else None})

        def launch(count: int) -> None:
            for _ in range(count):
                if state["started"] >= n:
                    return
                state["started"] += 1
                pool.pending += 1
                self.reactor.connectTCP(pool.host, pool.port, pool, timeout=30)

        def settle() -> None:
            if inflight and not rate:
                launch(inflight - pool.pending)
            if state["started"] >= n and pool.pending <= 0:
                finish()

        pool.on_settle = settle
        if rate:
            tick = 0.01
            per_tick = rate * tick

            def paced(owed: float = 0.0) -> None:
                if state["done"]:
                    return
                owed += per_tick
                launch(int(owed))
                owed -= int(owed)
                if state["started"] < n:
                    self.reactor.callLater(tick, paced, owed)

            paced()
        else:
            launch(inflight or n)
        if n == 0:
            finish()

    def do_reset(self) -> None:
        assert self.pool is not None
        for listener in self.pool.listeners:
            listener.events = []
        self.answer({"ok": True, "open": len(self.pool.open())})

    def do_wait(self, score: float, timeout: float = 10.0) -> None:
        assert self.pool is not None
        pool = self.pool
        began = time.monotonic()

        def done(listener: Listener) -> bool:
            return any(pool.score_of(i) >= score for _, i in listener.events)

        def check() -> None:
            listeners = pool.open()
            ready = sum(1 for x in listeners if done(x))
            elapsed = time.monotonic() - began
            if ready == len(listeners) or elapsed > timeout:
                self.answer({"ready": ready, "open": len(listeners),
                             "seconds": round(elapsed, 3)})
            else:
                self.reactor.callLater(0.05, check)

        check()

    def do_latency(self, writes: list[list[float]]) -> None:
        assert self.pool is not None
        pool = self.pool
        latencies: list[float] = []
        missing = 0
        order = sorted(writes)
        for listener in pool.open():
            # Running maximum of the score seen, so each write finds its first covering event.
            seen: list[tuple[float, float]] = []
            best = float("-inf")
            for when, event_id in listener.events:
                score = pool.score_of(event_id)
                if score == score and score > best:  # not NaN, and new
                    best = score
                    seen.append((score, when))
            scores = [s for s, _ in seen]
            for score, t in order:
                at = bisect_left(scores, score)
                if at == len(scores):
                    missing += 1
                else:
                    latencies.append(seen[at][1] - t)
        self.answer({"latencies": [round(x, 6) for x in latencies], "missing": missing})

    def do_rates(self, start: float, end: float) -> None:
        assert self.pool is not None
        counts = []
        peak = 0
        bins: dict[int, int] = {}
        for listener in self.pool.open():
            times = [t for t, _ in listener.events if start <= t <= end + 5.0]
            counts.append(sum(1 for t in times if t <= end))
            lo = 0
            for hi, t in enumerate(times):
                while times[lo] < t - 1.0:
                    lo += 1
                peak = max(peak, hi - lo + 1)
            for t in times:
                b = int((t - start) * 10)
                bins[b] = bins.get(b, 0) + 1
        seconds = max(end - start, 1e-9)
        self.answer({
            "listeners": len(counts),
            "events": sum(counts),
            "events_max": max(counts) if counts else 0,
            "seconds": seconds,
            "per_s_max_any_1s_window": peak,
            "arrivals_per_100ms": [bins.get(i, 0) for i in range(max(bins, default=-1) + 1)],
        })

    def do_close(self) -> None:
        if self.pool is not None:
            for listener in self.pool.listeners:
                if listener.transport is not None:
                    listener.transport.abortConnection()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.answer({"closed": True, "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)})
        self.reactor.callLater(0.1, self.reactor.stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="exit after this long whatever happens")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO

    StandardIO(Control(reactor))
    reactor.callLater(args.max_seconds, reactor.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
