# -*- test-case-name: tests.test_bench_smoke -*-
"""Write-path benchmark: ``POST score-add`` throughput and latency at 1, 16 and 64 connections.

    python bench/write_path.py [--connections 1,16,64] [--seconds 8] [--repeat 3]

Side by side in one run: a bare Klein handler that does nothing (bench/bare_klein.py, the
ceiling), ``twistd -n leaderboard`` on SQLite (access log off, the default, and a second
server with ``LEADERBOARD_ACCESS_LOG=on`` unless ``--no-log-on``), and ``twistd -n leaderboard`` on the RethinkDB
wire-protocol test server (``python -m tests.reqlserver``). The load comes from ``wrk``
(Debian's, ``apt-get install -y wrk``) in its own process, spreading writes over 50 players
of one board. Each (target, connections) cell runs ``--repeat`` times, interleaved; the
medians are reported. Prints one JSON line; writes ``--plot`` (PNG).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._lib import (  # noqa: E402
    PERF_DIR,
    bare_klein,
    cpu_seconds,
    emit,
    ints,
    log,
    machine,
    make_board,
    median,
    project_server,
    pyplot,
    raise_nofile,
    reqlserver,
    save_plot,
)

BOARD = "bench"
PLAYERS = 50

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"amount": 1}'
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/boards/%(board)s/players/p" .. (counter %% %(players)d + 1) .. "/score-add/")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"mean_us":%%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
""" % {"board": BOARD, "players": PLAYERS}  # noqa: UP031 (Lua has its own braces)


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout + out.stderr).split("[", 1)[0].strip()


def run_wrk(url: str, connections: int, seconds: float, script: Path,
            pid: int | None) -> dict[str, Any]:
    threads = min(connections, 2)
    before = cpu_seconds(pid) if pid else None
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    errors = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    duration = r["duration_us"] / 1e6
    result = {"rps": round((r["requests"] - errors) / duration, 1), "requests": r["requests"],
              "errors": errors, "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000,
              "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000}
    if pid:
        result["server_cpu_ms_per_req"] = round(
            (cpu_seconds(pid) - before) * 1000 / max(r["requests"], 1), 3)  # type: ignore[operator]
    return result


def start_targets(stack: ExitStack, want_rethink: bool,
                  want_log_on: bool = True,
                  ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    targets: dict[str, tuple[str, int]] = {}
    problems: dict[str, str] = {}
    klein = bare_klein(stack)
    targets["bare-klein"] = (klein.url, klein.pid)
    sqlite = project_server(stack, env={"LEADERBOARD_ACCESS_LOG": "off"})  # the default
    make_board(sqlite.url, BOARD, PLAYERS)
    assert sqlite.proc is not None
    targets["sqlite"] = (sqlite.url, sqlite.proc.pid)
    if want_log_on:
        loud = project_server(stack, env={"LEADERBOARD_ACCESS_LOG": "on"})
        make_board(loud.url, BOARD, PLAYERS)
        assert loud.proc is not None
        targets["sqlite-access-log-on"] = (loud.url, loud.proc.pid)
    if want_rethink:
        try:
            reql = reqlserver(stack)
            rethink = project_server(
                stack, env={"DATABASE_URL": f"rethinkdb://127.0.0.1:{reql.port}/bench",
                            "LEADERBOARD_ACCESS_LOG": "off"})
            make_board(rethink.url, BOARD, PLAYERS)
            assert rethink.proc is not None
            targets["rethinkdb-test-server"] = (rethink.url, rethink.proc.pid)
        except Exception as e:  # report it, measure the rest
            problems["rethinkdb-test-server"] = f"{type(e).__name__}: {str(e)[:500]}"
            log(f"RethinkDB target unavailable: {e}")
    return targets, problems


def plot(table: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = list(table)
    conns = sorted({c for cells in table.values() for c in cells})
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(conns))]
        ax1.bar(xs, [table[name][c]["rps"] for c in conns], width, label=name)
        ax2.bar(xs, [table[name][c]["p99_ms"] for c in conns], width, label=name)
    for ax, title in ((ax1, "score-add requests/s (median)"), (ax2, "p99 latency, ms (median)")):
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(conns))])
        ax.set_xticklabels([f"{c} conn" for c in conns])
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    save_plot(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=ints, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-rethinkdb", action="store_true")
    parser.add_argument("--no-log-on", action="store_true",
                        help="skip the extra SQLite server with LEADERBOARD_ACCESS_LOG=on")
    parser.add_argument("--plot", type=Path, default=PERF_DIR / "write_path.png")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    raise_nofile()
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        script = Path(tmp) / "score_add.lua"
        script.write_text(WRK_SCRIPT)
        targets, problems = start_targets(stack, not args.no_rethinkdb,
                                          not args.no_log_on)
        for url, pid in targets.values():  # warm up each target
            run_wrk(url, 4, 1, script, pid)
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {t: {} for t in targets}
        for rep in range(args.repeat):
            for c in args.connections:
                for name, (url, pid) in targets.items():
                    r = run_wrk(url, c, args.seconds, script, pid)
                    runs[name].setdefault(c, []).append(r)
                    log(f"run {rep + 1}: {name} c={c}: {r['rps']} req/s, p99 {r['p99_ms']} ms")
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for name, cells in runs.items():
        table[name] = {}
        for c, rs in cells.items():
            table[name][c] = {k: median([r[k] for r in rs]) for k in rs[0]}
            table[name][c]["rps_runs"] = [r["rps"] for r in rs]
    ratios: dict[str, Any] = {}
    top = max(args.connections)
    ceiling = table.get("bare-klein", {}).get(top, {}).get("rps")
    for name in table:
        if name != "bare-klein" and ceiling:
            ratios[name] = {str(c): round(table[name][c]["rps"] / table["bare-klein"][c]["rps"], 3)
                            for c in args.connections}
    sqlite_ratio = ratios.get("sqlite", {}).get(str(top))
    plot(table, args.plot)
    emit({"bench": "write_path", "machine": machine(), "generator": wrk_version(),
          "seconds": round(time.monotonic() - began, 1),
          "table": {n: {str(c): v for c, v in cells.items()} for n, cells in table.items()},
          "access_log": {"sqlite": "off", "sqlite-access-log-on": "on",
                         "rethinkdb-test-server": "off"},
          "ratio_to_bare_klein": ratios,
          "target": {"sqlite_at": top, "ratio": sqlite_ratio, "want": 0.5,
                     "met": sqlite_ratio is not None and sqlite_ratio >= 0.5},
          "unavailable": problems, "plot": str(args.plot)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
