# -*- test-case-name: tests.test_bench_smoke -*-
"""Fan-out benchmark: write-response-to-receipt latency at N listeners, native and via Pushpin.

    python bench/fanout.py [--native 1000,5000,10000] [--pushpin 1000,5000,10000,20000]

For each N, a separate client process (bench/sse_load.py) holds N listeners on one board.
Then: ``--singles`` single score-adds (each waits until every listener has it) and
``--sustained`` seconds of writes at ``--rate`` a second. Latency is from the moment the
writer has read the write's response to each listener's receipt of the event carrying it.

Native: the project (``twistd -n leaderboard``, SQLite) against the ceiling, a bare Twisted
broadcaster (bench/bare_broadcaster.py), same client, same N. Pushpin: the project behind a
private Pushpin (listeners connect at ``--connect-rate`` a second) against a raw publish of
the same event to Pushpin's publish endpoint, same listeners. Prints one JSON line; writes
``--plot`` (PNG).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._lib import (  # noqa: E402
    PERF_DIR,
    Http,
    SseLoad,
    bare_broadcaster,
    cdf_sample,
    emit,
    ints,
    log,
    machine,
    make_board,
    median,
    percentiles,
    project_server,
    pyplot,
    raise_nofile,
    save_plot,
)

BOARD = "bench"
WRITE_PATH = f"/boards/{BOARD}/players/p1/score-add/"
RAW_BASE = 10**9

Write = Callable[[], tuple[float, float]]


class HttpWrite:
    """A score-add, timed: the player's new score, and when its response was read.

    Thread-safe: each thread has its own keep-alive connection, so sustained writes can be
    paced open-loop (a slow answer does not delay the next write)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()

    def http(self) -> Http:
        if not hasattr(self.local, "http"):
            self.local.http = Http(self.url)
        return self.local.http  # type: ignore[no-any-return]

    def __call__(self) -> tuple[float, float]:
        status, body, t = self.http().request("POST", WRITE_PATH)
        if status != 200:
            raise RuntimeError(f"score-add answered {status}: {body[:200]!r}")
        return float(json.loads(body)["score"]), t


class RawPublish(HttpWrite):
    """The same board event POSTed straight to Pushpin's publish endpoint (no id chain),
    keyed by a fresh score so the client can tell which publish it carries."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lock = threading.Lock()
        self.k = 0

    def __call__(self) -> tuple[float, float]:
        with self.lock:
            self.k += 1
            score = RAW_BASE + self.k
        data = json.dumps({"id": BOARD, "name": "Bench", "players": [
            {"id": "p1", "name": "P1", "score": score, "rank": 1}]}, separators=(",", ":"))
        content = f"event: update\nid: raw-{score}\ndata: {data}\n\n"
        body = {"items": [{"channel": f"board-{BOARD}",
                           "formats": {"http-stream": {"content": content}}}]}
        status, answer, t = self.http().request("POST", "/publish/", body)
        if status != 200:
            raise RuntimeError(f"publish answered {status}: {answer[:200]!r}")
        return float(score), t


def measure(load: SseLoad, write: Write, singles: int, sustained: float, rate: float,
            wait_timeout: float) -> dict[str, Any]:
    runs = []
    for _ in range(singles):
        load.reset()
        sent = time.monotonic()
        score, t = write()
        waited = load.wait(score=score, timeout=wait_timeout)
        values, missing = load.latency([[score, t]])
        from_request, _ = load.latency([[score, sent]])
        runs.append({**percentiles(values), "missing": missing,
                     "complete": waited["ready"] == waited["open"],
                     "cdf_ms": cdf_sample(values),
                     "from_request": percentiles(from_request)})
        time.sleep(0.3)
    result: dict[str, Any] = {}
    if runs:
        result["single"] = {
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "max_ms": median([r["max_ms"] for r in runs]),
            "all_complete": all(r["complete"] for r in runs),
            # The same receipts timed from when the write was sent, not from its response:
            # a server that answers only after queueing the fan-out starts the clock later.
            "from_request_p50_ms": median([r["from_request"]["p50_ms"] for r in runs]),
            "from_request_p99_ms": median([r["from_request"]["p99_ms"] for r in runs]),
            "runs": [{k: r[k] for k in ("p50_ms", "p99_ms", "max_ms", "n", "missing")}
                     for r in runs],
            "cdf_ms": sorted(runs, key=lambda r: r["p99_ms"] or 0)[len(runs) // 2]["cdf_ms"],
        }
    if sustained > 0:
        load.reset()
        start = time.monotonic()
        count = max(1, int(sustained * rate))
        futures = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for i in range(count):  # open loop: each write is sent on time
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(write))
            writes = [list(f.result()) for f in futures]
        end = time.monotonic()
        waited = load.wait(score=writes[-1][0], timeout=wait_timeout)
        values, missing = load.latency(writes)
        rates = load.rates(start=start, end=end)
        result["sustained"] = {**percentiles(values), "missing": missing, "writes": count,
                               "achieved_rate": round(count / (end - start), 2),
                               "complete": waited["ready"] == waited["open"],
                               "events_per_listener_per_s": rates["per_s_mean"]}
    return result


def run_native(args: argparse.Namespace, stack: ExitStack) -> list[dict[str, Any]]:
    server = project_server(stack)
    make_board(server.url)
    bare = bare_broadcaster(stack)
    systems = {"project": server.url, "bare": bare.url}
    rows = []
    for n in args.native:
        for system, url in systems.items():
            with ExitStack() as inner:
                load = SseLoad(inner, max_seconds=args.max_seconds)
                log(f"native {system}: connecting {n} listeners")
                connect = load.connect(f"{url}/boards/{BOARD}/", n=n,
                                       inflight=args.inflight, timeout=args.connect_timeout)
                log(f"native {system} n={n}: {connect['admitted']} admitted "
                    f"in {connect['seconds']} s")
                profile = (start_profile(args.profile, server.proc.pid, n)  # type: ignore[union-attr]
                           if args.profile and system == "project" else None)
                row = {"mode": "native", "system": system, "n": n, "connect": connect,
                       **measure(load, HttpWrite(url), args.singles, args.sustained,
                                 args.rate, args.wait_timeout)}
                if profile is not None:
                    row["profile"] = stop_profile(profile)
                row["client_cpu_s"] = load.stop()
                rows.append(row)
                log(f"native {system} n={n}: single p99 "
                    f"{row.get('single', {}).get('p99_ms')} ms")
            time.sleep(1.0)
    return rows


def run_pushpin(args: argparse.Namespace, stack: ExitStack) -> list[dict[str, Any]]:
    from tests.harness.pushpin import PushpinHarness

    # The origin's port is only known once it listens, and Pushpin's publish port once
    # Pushpin runs: start Pushpin on a placeholder route, then the server, then route.
    pushpin = PushpinHarness(1, debug=False, log_level=1)
    pushpin.start()
    stack.callback(pushpin.stop)
    server = project_server(stack, env={"GRIP_URL": pushpin.grip_url})
    pushpin.set_routes([f"* 127.0.0.1:{server.port}"])
    make_board(server.url)
    time.sleep(1.5)  # Pushpin re-reads its routes file
    rows = []
    for n in args.pushpin:
        with ExitStack() as inner:
            load = SseLoad(inner, max_seconds=args.max_seconds)
            log(f"pushpin: connecting {n} listeners at {args.connect_rate}/s")
            connect = load.connect(f"{pushpin.http_url}/boards/{BOARD}/", n=n,
                                   rate=args.connect_rate, timeout=args.connect_timeout)
            log(f"pushpin n={n}: {connect['admitted']} admitted, {connect['failed']} failed "
                f"in {connect['seconds']} s")
            # Both single-write series before either sustained phase: an overloaded
            # sustained phase can make Pushpin drop slow subscribers, and the raw singles
            # measured after it would then reach nobody.
            project_write, raw_write = HttpWrite(server.url), RawPublish(pushpin.grip_url)
            project = measure(load, project_write, args.singles, 0, args.rate,
                              args.wait_timeout)
            raw = measure(load, raw_write, args.singles, 0, args.rate, args.wait_timeout)
            project.update(measure(load, project_write, 0, args.sustained, args.rate,
                                   args.wait_timeout))
            raw.update(measure(load, raw_write, 0, args.sustained, args.rate,
                               args.wait_timeout))
            cpu = load.stop()
            rows.append({"mode": "pushpin", "system": "project", "n": n, "connect": connect,
                         **project, "client_cpu_s": cpu})
            rows.append({"mode": "pushpin", "system": "raw", "n": n, "connect": connect,
                         **raw})
            log(f"pushpin n={n}: project p99 {project.get('single', {}).get('p99_ms')} ms, "
                f"raw p99 {raw.get('single', {}).get('p99_ms')} ms")
        time.sleep(2.0)
    return rows


def start_profile(directory: Path, pid: int, n: int) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy sampling the server while it serves ``n`` listeners (collapsed stacks)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"server-native-{n}.txt"
    spy = str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate",
                             "200", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc, out


def stop_profile(profile: tuple[subprocess.Popen[bytes], Path]) -> str:
    proc, out = profile
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return str(out)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The project's p99 over its ceiling's, per mode, N and kind of run."""
    out = []
    index = {(r["mode"], r["system"], r["n"]): r for r in rows}
    for (mode, system, n), row in index.items():
        if system != "project":
            continue
        base = index.get((mode, "bare" if mode == "native" else "raw", n))
        if base is None:
            continue
        entry: dict[str, Any] = {"mode": mode, "n": n}
        for kind in ("single", "sustained"):
            mine, theirs = row.get(kind, {}).get("p99_ms"), base.get(kind, {}).get("p99_ms")
            if mine is not None and theirs:
                entry[f"{kind}_p99_ratio"] = round(mine / theirs, 3)
        mine = row.get("single", {}).get("from_request_p99_ms")
        theirs = base.get("single", {}).get("from_request_p99_ms")
        if mine is not None and theirs:
            entry["single_from_request_p99_ratio"] = round(mine / theirs, 3)
        entry["target_p99_ratio"] = 1.25
        entry["met"] = entry.get("single_p99_ratio", 99) <= 1.25
        if mode == "pushpin":
            entry["all_admitted"] = row["connect"]["admitted"] == n
        out.append(entry)
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, mode, systems in ((axes[0], "native", ("project", "bare")),
                              (axes[1], "pushpin", ("project", "raw"))):
        for system in systems:
            sel = sorted((r for r in rows if r["mode"] == mode and r["system"] == system
                          and "single" in r), key=lambda r: r["n"])
            if not sel:
                continue
            ns = [r["n"] for r in sel]
            ax.plot(ns, [r["single"]["p99_ms"] for r in sel], "o-", label=f"{system} p99")
            ax.plot(ns, [r["single"]["p50_ms"] for r in sel], "s--", label=f"{system} p50")
        ax.set_title(f"{mode}: one write, response to receipt")
        ax.set_xlabel("listeners")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax = axes[2]
    biggest = max((r["n"] for r in rows if r["mode"] == "native"),
                  default=max((r["n"] for r in rows), default=None))
    for r in rows:
        if "single" in r and r["n"] == biggest and r["single"]["cdf_ms"]:
            cdf = r["single"]["cdf_ms"]
            ax.plot(cdf, [i / (len(cdf) - 1 or 1) for i in range(len(cdf))],
                    label=f"{r['mode']} {r['system']}")
    ax.set_title(f"latency CDF at {biggest} listeners (median run)")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of listeners")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save_plot(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native", type=ints, default=[1000, 5000, 10000])
    parser.add_argument("--pushpin", type=ints, default=[1000, 5000, 10000, 20000])
    parser.add_argument("--singles", type=int, default=5, help="single writes per N")
    parser.add_argument("--sustained", type=float, default=5.0, help="seconds of writes")
    parser.add_argument("--rate", type=float, default=10.0, help="sustained writes a second")
    parser.add_argument("--connect-rate", type=float, default=10000.0,
                        help="new connections a second through Pushpin")
    parser.add_argument("--inflight", type=int, default=500,
                        help="native: handshakes in flight at once")
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--wait-timeout", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--plot", type=Path, default=PERF_DIR / "fanout.png")
    parser.add_argument("--profile", type=Path, default=None,
                        help="directory: py-spy the native project server (collapsed stacks)")
    args = parser.parse_args(argv)
    raise_nofile(200_000)
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if args.native:
            rows += run_native(args, stack)
    with ExitStack() as stack:
        if args.pushpin:
            rows += run_pushpin(args, stack)
    result = {"bench": "fanout", "machine": machine(), "seconds": round(time.monotonic() - began, 1),
              "ratios": ratios(rows),
              "rows": [{k: v for k, v in r.items() if k != "single"}
                       | ({"single": {k: v for k, v in r["single"].items() if k != "cdf_ms"}}
                          if "single" in r else {}) for r in rows],
              "plot": str(args.plot)}
    plot(rows, args.plot)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
