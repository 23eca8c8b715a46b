# -*- test-case-name: tests.test_bench_smoke -*-
"""The fan-out ceiling: a bare twisted.web SSE broadcaster, a few lines, no store, no feed.

``GET`` (any path) holds an SSE stream and writes one first event; ``POST`` (any path, e.g.
the score-add URL) bumps a counter, pre-encodes one event and writes it to every listener,
then answers ``{"score": n}``. Prints ``listening on port N`` once it listens.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from typing import Any

from twisted.web import resource as web_resource
from twisted.web import server


def encode(score: int) -> bytes:
    data = json.dumps({"id": "bench", "name": "Bench", "players": [
        {"id": "p1", "name": "P1", "score": score, "rank": 1}]}, separators=(",", ":"))
    return f"event: update\nid: bare-{score}\ndata: {data}\n\n".encode()


class Broadcaster(web_resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.listeners: set[Any] = set()
        self.score = 0
        self.event = encode(0)

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.channel.setTimeout(None)
        request.write(self.event)
        self.listeners.add(request)
        request.notifyFinish().addBoth(lambda _: self.listeners.discard(request))
        return server.NOT_DONE_YET

    def render_POST(self, request: Any) -> bytes:
        self.score += 1
        self.event = encode(self.score)
        for listener in self.listeners:
            listener.write(self.event)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"score": self.score}).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    site: Any = server.Site(Broadcaster())
    port: Any = reactor.listenTCP(  # type: ignore[attr-defined]
        args.port, site, backlog=4096, interface="127.0.0.1")
    print(f"listening on port {port.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
