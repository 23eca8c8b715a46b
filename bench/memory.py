# -*- test-case-name: tests.test_bench_smoke -*-
"""Memory benchmark: server RSS per idle native SSE listener, up to --listeners.

    python bench/memory.py [--listeners 10000] [--steps 4]

Measures the RSS of ``twistd -n leaderboard`` (SQLite) and, for context, of the bare
Twisted broadcaster (bench/bare_broadcaster.py), after a warm-up (a few listeners opened
and closed) and then at each step of idle listeners held by bench/sse_load.py. Per
listener = (RSS at N - RSS before) / N. Prints one JSON line; writes ``--plot`` (PNG).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._lib import (  # noqa: E402
    PERF_DIR,
    SseLoad,
    bare_broadcaster,
    emit,
    log,
    machine,
    make_board,
    project_server,
    pyplot,
    raise_nofile,
    rss_kb,
    save_plot,
)

BOARD = "bench"


def measure(url: str, pid: int, total: int, steps: int, settle: float) -> dict[str, Any]:
    with ExitStack() as stack:
        warm = SseLoad(stack)
        warm.connect(f"{url}/boards/{BOARD}/", n=min(50, total), inflight=50, timeout=60)
        warm.stop()
    time.sleep(settle)
    base = rss_kb(pid)
    points = [[0, base]]
    with ExitStack() as stack:
        load = SseLoad(stack)
        held = 0
        for i in range(1, steps + 1):
            want = total * i // steps
            answer = load.connect(f"{url}/boards/{BOARD}/", n=want - held, inflight=500,
                                  timeout=120)
            held += answer["admitted"]
            time.sleep(settle)
            points.append([held, rss_kb(pid)])
            log(f"{held} listeners: RSS {points[-1][1]} KiB")
    n, top = points[-1]
    return {"listeners": n, "rss_before_kib": base, "rss_at_n_kib": top,
            "per_listener_kib": round((top - base) / n, 2) if n else None,
            "points": points}


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in results.items():
        xs = [p[0] for p in r["points"]]
        ax.plot(xs, [p[1] / 1024 for p in r["points"]], "o-",
                label=f"{name}: {r['per_listener_kib']} KiB/listener")
    ax.set_xlabel("idle native SSE listeners")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("server memory per idle listener")
    ax.grid(alpha=0.3)
    ax.legend()
    save_plot(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each reading")
    parser.add_argument("--plot", type=Path, default=PERF_DIR / "memory.png")
    args = parser.parse_args(argv)
    raise_nofile()
    results = {}
    with ExitStack() as stack:
        server = project_server(stack)
        make_board(server.url, BOARD, players=5)
        assert server.proc is not None
        results["project"] = measure(server.url, server.proc.pid, args.listeners, args.steps,
                                     args.settle)
    with ExitStack() as stack:
        bare = bare_broadcaster(stack)
        results["bare"] = measure(bare.url, bare.pid, args.listeners, args.steps, args.settle)
    plot(results, args.plot)
    project = results["project"]
    emit({"bench": "memory", "machine": machine(), **{k: v for k, v in results.items()},
          "target_kib": 20, "met": project["per_listener_kib"] is not None
          and project["per_listener_kib"] * 1.024 <= 20, "plot": str(args.plot)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
