# -*- test-case-name: tests.test_bench_smoke -*-
"""Burst benchmark: --rate writes a second to one board with --listeners listeners.

    python bench/burst.py [--rate 1000] [--seconds 10] [--listeners 1000]

The server is ``twistd -n leaderboard`` on SQLite; the writes come from bench/httpload.py
(open loop, paced), the listeners from bench/sse_load.py, each its own process. Measures
events per listener per second (mean over the burst, and the most any listener got in any
one second), board reads per second (the server's ``leaderboard_feed_reads`` counter on
``/metrics`` when it has one), and the delay from the last write's response to every
listener holding the final state. Prints one JSON line; writes ``--plot`` (PNG).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._lib import (  # noqa: E402
    PERF_DIR,
    PY,
    ROOT,
    Http,
    SseLoad,
    cpu_seconds,
    emit,
    log,
    machine,
    make_board,
    metric,
    percentiles,
    project_server,
    pyplot,
    raise_nofile,
    save_plot,
)

BOARD = "bench"


def run(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        server = project_server(stack)
        make_board(server.url, BOARD, players=5)
        load = SseLoad(stack)
        connect = load.connect(f"{server.url}/boards/{BOARD}/", n=args.listeners, inflight=500,
                               timeout=120)
        log(f"{connect['admitted']} listeners admitted in {connect['seconds']} s")
        time.sleep(1.0)
        load.reset()
        reads_before = metric(server.url, "leaderboard_feed_reads")
        cpu_before = cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
        log(f"writing {args.rate}/s for {args.seconds} s")
        writer = subprocess.run(
            [PY, str(ROOT / "bench" / "httpload.py"), server.url, "--rate", str(args.rate),
             "--duration", str(args.seconds), "--connections", str(args.connections),
             "--paths", f"/boards/{BOARD}/players/p1/score-add/"],
            capture_output=True, text=True, timeout=args.seconds + 120)
        if writer.returncode != 0 or not writer.stdout.strip():
            raise RuntimeError(f"httpload failed: {writer.stderr[-2000:]}")
        writes = json.loads(writer.stdout.strip().splitlines()[-1])
        cpu_after = cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
        status, body, _ = Http(server.url).request("GET", f"/boards/{BOARD}/players/p1/")
        final = float(json.loads(body)["score"])
        waited = load.wait(score=final, timeout=30)
        reads_after = metric(server.url, "leaderboard_feed_reads")
        values, missing = load.latency([[final, writes["last_response"]]])
        rates = load.rates(start=writes["start"], end=writes["last_response"])
        burst_seconds = writes["last_response"] - writes["start"]
        delay = percentiles(values)
        reads = (None if reads_before is None or reads_after is None
                 else reads_after - reads_before)
        result = {
            "bench": "burst", "machine": machine(),
            "listeners": connect["admitted"], "connect": connect,
            "writes": {k: v for k, v in writes.items() if k != "completions_per_100ms"},
            "final_score": final,
            "final_state": {"all_listeners": waited["ready"] == waited["open"],
                            "delay_max_ms": delay["max_ms"], "delay_p50_ms": delay["p50_ms"],
                            "delay_p99_ms": delay["p99_ms"], "missing": missing,
                            "target_ms": 200, "met": delay["max_ms"] is not None
                            and delay["max_ms"] <= 200 and missing == 0},
            "events_per_listener": {"per_s_mean": rates["per_s_mean"],
                                    "max_in_any_1s": rates["per_s_max_any_1s_window"],
                                    "target_per_s": 20,
                                    "met": rates["per_s_max_any_1s_window"] <= 20},
            "board_reads": None if reads is None else {
                "total": reads, "per_s": round(reads / burst_seconds, 2)},
            "board_reads_note": None if reads is not None else
                "the server has no /metrics leaderboard_feed_reads counter",
            "server_cpu_s": round(cpu_after - cpu_before, 2),
            "server_cpu_share": round((cpu_after - cpu_before) / burst_seconds, 3),
            "plot": str(args.plot),
        }
        plot(writes["completions_per_100ms"], rates, connect["admitted"], args.plot)
        return result


def plot(completions: list[int], rates: dict[str, Any], listeners: int, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot([i / 10 for i in range(len(completions))], [c * 10 for c in completions],
            label="writes answered per second")
    ax.set_xlabel("seconds since the first write")
    ax.set_ylabel("writes/s")
    ax2 = ax.twinx()
    arrivals = rates["arrivals_per_100ms"]
    ax2.plot([i / 10 for i in range(len(arrivals))],
             [a * 10 / max(listeners, 1) for a in arrivals], color="C1",
             label="events per listener per second")
    ax2.set_ylabel("events per listener per second")
    ax2.set_ylim(0, 25)
    fig.legend(loc="upper right")
    ax.set_title(f"burst: one board, {listeners} listeners")
    ax.grid(alpha=0.3)
    save_plot(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="writes a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32, help="writer connections")
    parser.add_argument("--plot", type=Path, default=PERF_DIR / "burst.png")
    args = parser.parse_args(argv)
    raise_nofile()
    emit(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
