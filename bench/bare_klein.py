# -*- test-case-name: tests.test_bench_smoke -*-
"""The write-path ceiling: a bare Klein app whose score-add route does nothing.

Same URL shape as the real server and a similar small JSON answer; no store, no validation.
Prints ``listening on port N`` once it listens.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from klein import Klein

app = Klein()


@app.route("/boards/<board>/players/<player>/score-add/", methods=["POST"])
def score_add(request: Any, board: str, player: str) -> bytes:
    request.setHeader(b"Content-Type", b"application/json")
    return (b'{"id":"' + player.encode() + b'","name":"P","score":1,"rank":1,"board":"'
            + board.encode() + b'"}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from twisted.internet import reactor  # Klein's import installed the default (epoll)
    from twisted.web.server import Site

    site: Any = Site(app.resource())
    port: Any = reactor.listenTCP(  # type: ignore[attr-defined]
        args.port, site, backlog=4096, interface="127.0.0.1")
    print(f"listening on port {port.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
