# -*- test-case-name: tests.test_reqlserver -*-
"""A RethinkDB 2.4 wire-protocol test server on Twisted, for the store's tests.

Usage (in a pytest-twisted test; the real ``rethinkdb`` driver talks to it over TCP)::

    from twisted.internet import reactor
    from tests.reqlserver import start_server

    server = await start_server(reactor)            # admin, empty password
    # server = await start_server(reactor, password="s3cret")
    conn = await r.connect(host="127.0.0.1", port=server.port)   # r.set_loop_type("twisted")
    ...
    await server.stop()      # closes the port AND drops every client connection
    await server.restart()   # listens again on the same port, same data
    await server.restart(unavailable_for=1.5)  # changes() fails ~1.5 s; r.db(x).wait() waits
    await server.stop()

A standalone process (for twistd integration tests)::

    python -m tests.reqlserver --port 0 [--data FILE] [--password P]
    # prints one line: "reqlserver listening on 127.0.0.1:N"; SIGTERM stops it.

Implemented: the V1_0 + SCRAM-SHA-256 handshake (wrong password -> error_code 12 and
close), START/CONTINUE/STOP/NOREPLY_WAIT/SERVER_INFO, pipelining, the spurious-CONTINUE
CLIENT_ERROR, batches (SUCCESS_PARTIAL + CONTINUE), changefeeds (table, filtered or
between-ranged table, point, order_by(index).limit; include_initial/_types/_states,
squash) with one batch per CONTINUE, and the terms a store needs: db/table/index admin,
insert/update/replace/delete (return_changes, conflict), get/get_all/between/filter/
order_by/limit/count, r.row, lambdas, arithmetic, comparisons, branch, default, ...
Terms it does not know answer a COMPILE_ERROR "Term X not implemented by the test server.";
unknown term or global optargs are a COMPILE_ERROR as on the real server; write functions
that read tables (or use r.js/r.uuid()) need ``non_atomic=True`` as on the real server.
Data is in memory (optionally a JSON file with ``data_path=``/``--data``). Unordered reads
come back in primary-key order (the real server uses shard hash order).
"""

from __future__ import annotations

from tests.reqlserver._data import Entropy, RandomEntropy
from tests.reqlserver._server import ReqlService, RunningServer, start_server

__all__ = ["Entropy", "RandomEntropy", "ReqlService", "RunningServer", "start_server"]
