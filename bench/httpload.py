# -*- test-case-name: tests.test_bench_smoke -*-
"""A paced HTTP load generator on Twisted: POSTs at a fixed rate over keep-alive connections.

    python bench/httpload.py URL --rate 1000 --duration 10 --connections 32 [--paths P1,P2]

Open loop: request i is due at ``start + i / rate`` whatever the answers do; a request
that finds no idle connection waits for one, and its latency counts from when it was due
(no coordinated omission). Prints one JSON line: counts, statuses, achieved rate,
latency percentiles, completions per 100 ms, and the ``time.monotonic()`` of the last
response (CLOCK_MONOTONIC is machine-wide, so other processes can compare against it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import protocol


class Connection(protocol.Protocol):
    transport: Any

    def __init__(self, load: Load) -> None:
        self.load = load
        self.buffer = b""
        self.due = 0.0
        self.busy = False

    def connectionMade(self) -> None:
        self.load.idle.append(self)
        self.load.pump()

    def send(self, request: bytes, due: float) -> None:
        self.busy = True
        self.due = due
        self.transport.write(request)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if b"transfer-encoding: chunked" in head:
                tail = self.buffer.find(b"\r\n0\r\n\r\n", end)
                if tail < 0:
                    return
                total = tail + 7
            else:
                total = end + 4 + length
            if len(self.buffer) < total:
                return
            status = int(head.split(b" ", 2)[1])
            self.buffer = self.buffer[total:]
            self.busy = False
            self.load.done(self, status, self.due)

    def connectionLost(self, reason: Any = None) -> None:
        if self.busy:
            self.load.done(self, 0, self.due)
        self.load.lost(self)


class Load(protocol.ClientFactory):
    def __init__(self, reactor: Any, url: str, paths: list[str], body: bytes, rate: float,
                 duration: float, connections: int) -> None:
        self.reactor = reactor
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.requests = [
            (f"POST {p} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body for p in paths]
        self.rate = rate
        self.duration = duration
        self.connections = connections
        self.idle: deque[Connection] = deque()
        self.waiting: deque[float] = deque()
        self.issued = 0
        self.sent = 0
        self.total = int(rate * duration)
        self.completed = 0
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []
        self.bins: dict[int, int] = {}
        self.start = 0.0
        self.last_response = 0.0
        self.finished = False

    def buildProtocol(self, addr: Any) -> Connection:
        return Connection(self)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.statuses["connect_failed"] = self.statuses.get("connect_failed", 0) + 1

    def run(self) -> None:
        for _ in range(self.connections):
            self.reactor.connectTCP(self.host, self.port, self)
        self.start = time.monotonic()
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        due_now = min(self.total, int((now - self.start) * self.rate) + 1)
        while self.issued < due_now:
            self.waiting.append(self.start + self.issued / self.rate)
            self.issued += 1
        self.pump()
        if self.issued < self.total:
            self.reactor.callLater(0.002, self.tick)

    def pump(self) -> None:
        while self.waiting and self.idle:
            conn = self.idle.popleft()
            if conn.transport is None or not conn.transport.connected:
                continue
            self.sent += 1
            conn.send(self.requests[self.sent % len(self.requests)], self.waiting.popleft())

    def done(self, conn: Connection, status: int, due: float) -> None:
        now = time.monotonic()
        self.completed += 1
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.latencies.append(now - due)
        self.last_response = now
        b = int((now - self.start) * 10)
        self.bins[b] = self.bins.get(b, 0) + 1
        if status:
            self.idle.append(conn)
        self.pump()
        if self.completed >= self.total:
            self.finish()

    def lost(self, conn: Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def finish(self, timed_out: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        s = sorted(self.latencies)

        def at(q: float) -> float | None:
            return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2) if s else None

        ok = sum(v for k, v in self.statuses.items() if k.startswith("2"))
        elapsed = self.last_response - self.start if self.last_response else 0.0
        print(json.dumps({
            "target_rate": self.rate, "duration": self.duration, "sent": self.issued,
            "completed": self.completed, "ok": ok, "statuses": self.statuses,
            "timed_out": timed_out,
            "achieved_rate": round(ok / elapsed, 1) if elapsed else 0.0,
            "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(s[-1] * 1000, 2) if s else None,
            "start": self.start, "last_response": self.last_response,
            "completions_per_100ms": [self.bins.get(i, 0) for i in range(max(self.bins, default=-1) + 1)],
        }), flush=True)
        self.reactor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--paths", default="/boards/bench/players/p1/score-add/")
    parser.add_argument("--body", default='{"amount": 1}')
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds after the last due request before giving up")
    args = parser.parse_args(argv)
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    load = Load(reactor, args.url, args.paths.split(","), args.body.encode(), args.rate,
                args.duration, args.connections)
    reactor.callWhenRunning(load.run)  # type: ignore[attr-defined]
    reactor.callLater(args.duration + args.grace, load.finish, True)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
