# -*- test-case-name: tests.test_reqlserver -*-
"""Run the wire-protocol test server as a process: ``python -m tests.reqlserver``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reqlserver",
                                     description="RethinkDB wire-protocol test server")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--password", default="", help="admin password (default: empty)")
    parser.add_argument("--data", default=None, help="JSON file that keeps the data")
    parser.add_argument("--server-name", default="reqlserver")
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    from twisted.python.failure import Failure

    from tests.reqlserver._server import start_server

    outcome: list[Any] = []
    start_server(reactor, password=args.password, port=args.port, interface=args.interface,
                 data_path=args.data, server_name=args.server_name).addBoth(outcome.append)
    result = outcome[0]  # start_server fires at once
    if isinstance(result, Failure):
        sys.stderr.write(f"reqlserver failed to start: {result.getErrorMessage()}\n")
        return 1
    sys.stdout.write(f"reqlserver listening on {result.host}:{result.port}\n")
    sys.stdout.flush()
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
