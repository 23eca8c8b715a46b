# -*- test-case-name: tests.test_bench_smoke -*-
"""What the benchmark scripts share: processes they start, the load client, HTTP, output."""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness.server import ServerProcess  # noqa: E402

PERF_DIR = ROOT / "docs" / "perf"
PY = sys.executable
BACKLOG = 4096


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries the one JSON result line."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def raise_nofile(want: int = 65536) -> None:
    """Raise this process's open-file limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load1": round(os.getloadavg()[0], 2)}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: Path) -> None:
    """Lay out and write a figure as a PNG, making its folder if needed."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def ints(text: str) -> list[int]:
    """A comma-separated list of integers (a command-line option's value)."""
    return [int(x) for x in text.split(",") if x.strip()]


def median(values: list[float]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- processes ---------------------------------------------------------------------------------


class Child:
    """A helper process that prints ``listening on port N``; killed (by its pid) on exit."""

    def __init__(self, argv: list[str], pattern: str = r"listening on (?:port |[0-9.]+:)(\d+)",
                 timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=str(ROOT), env=full_env)
        self.lines: list[str] = []
        self.port = 0
        found = threading.Event()
        rx = re.compile(pattern)

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                m = rx.search(line)
                if m and not self.port:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv} did not start:\n{''.join(self.lines)}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def bare_broadcaster(stack: ExitStack) -> Child:
    child = Child([PY, str(ROOT / "bench" / "bare_broadcaster.py")])
    stack.callback(child.stop)
    return child


def bare_klein(stack: ExitStack) -> Child:
    child = Child([PY, str(ROOT / "bench" / "bare_klein.py")])
    stack.callback(child.stop)
    return child


def reqlserver(stack: ExitStack) -> Child:
    child = Child([PY, "-m", "tests.reqlserver", "--port", "0"])
    stack.callback(child.stop)
    return child


def project_server(stack: ExitStack, env: dict[str, str] | None = None,
                   args: list[str] | None = None) -> ServerProcess:
    """``twistd -n leaderboard`` from the working tree, on a fresh SQLite file by default."""
    workdir = Path(tempfile.mkdtemp(prefix="lb-bench-"))
    full_env = {"DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
                "LEADERBOARD_SEED_DEMO": "0"}
    overlay = os.environ.get("BENCH_SERVER_PYTHONPATH")
    if overlay:  # benchmark a candidate change: a tree whose modules shadow the checkout's
        full_env["PYTHONPATH"] = overlay + os.pathsep + str(ROOT)
    full_env.update(env or {})
    server = ServerProcess(workdir, args=args, env=full_env,
                           port=f"tcp:0:interface=127.0.0.1:backlog={BACKLOG}")
    server.start(timeout=60)
    stack.callback(_stop_server, server)
    return server


def _stop_server(server: ServerProcess) -> None:
    try:
        server.stop()
    except AssertionError:
        server.kill()


# -- HTTP ----------------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection (blocking), for set-up and timed single writes."""

    def __init__(self, url: str) -> None:
        m = re.match(r"http://([^:/]+):(\d+)", url)
        assert m, url
        self.host, self.port = m.group(1), int(m.group(2))
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        """Status, body, and ``time.monotonic()`` when the whole response was read."""
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload, time.monotonic()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def make_board(url: str, board: str = "bench", players: int = 1) -> None:
    """A board with players ``p1``..``pN`` (``p1`` is the one the events are keyed on)."""
    http_ = Http(url)
    status, body, _ = http_.request("POST", "/boards/", {"id": board, "name": board.title()})
    assert status in (201, 409), (status, body)
    for i in range(1, players + 1):
        status, body, _ = http_.request("POST", f"/boards/{board}/players/",
                                        {"id": f"p{i}", "name": f"P{i}"})
        assert status in (201, 409), (status, body)
    http_.close()


def metric(url: str, name: str) -> float | None:
    """A counter from the server's ``/metrics`` (Prometheus text), or None without one."""
    try:
        status, body, _ = Http(url).request("GET", "/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head in (name, name + "_total"):
                return float(value)
    return None


# -- the load client -------------------------------------------------------------------------

PER_PROCESS = 15_000
"""Listeners one client process holds at most (its open-file limit is the machine's hard one)."""


class _Client:
    """One ``bench/sse_load.py`` process, driven over its stdin/stdout."""

    def __init__(self, max_seconds: float) -> None:
        self.proc = subprocess.Popen(
            [PY, str(ROOT / "bench" / "sse_load.py"), "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client exited ({self.proc.poll()}) during {cmd}")
        result: dict[str, Any] = json.loads(line)
        return result

    def stop(self) -> dict[str, Any] | None:
        result = None
        if self.proc.poll() is None:
            try:
                self.send("close")
                result = self.receive("close")
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return result


def _split(total: float, parts: int) -> list[float]:
    return [total / parts] * parts


class SseLoad:
    """Listeners held by ``bench/sse_load.py`` processes (one per ``PER_PROCESS``), driven
    together: commands go to all, answers are merged."""

    def __init__(self, stack: ExitStack, max_seconds: float = 900.0) -> None:
        self.max_seconds = max_seconds
        self.clients: list[_Client] = []
        stack.callback(self.stop)

    def _all(self, cmd: str, per_client: list[dict[str, Any]] | None = None,
             **args: Any) -> list[dict[str, Any]]:
        for i, client in enumerate(self.clients):
            client.send(cmd, **args, **(per_client[i] if per_client else {}))
        return [client.receive(cmd) for client in self.clients]

    def connect(self, url: str, n: int, rate: float = 0.0, inflight: int = 0,
                timeout: float = 120.0) -> dict[str, Any]:
        count = max(1, -(-n // PER_PROCESS))
        while len(self.clients) < count:
            self.clients.append(_Client(self.max_seconds))
        shares = [n // count + (1 if i < n % count else 0) for i in range(count)]
        answers = self._all("connect", [
            {"n": shares[i], "rate": rate / count, "inflight": max(1, inflight // count)
             if inflight else 0} for i in range(count)], url=url, timeout=timeout)
        failures: dict[str, int] = {}
        for a in answers:
            for why, k in a["failures"].items():
                failures[why] = failures.get(why, 0) + k
        seconds = max(a["seconds"] for a in answers)
        admitted = sum(a["admitted"] for a in answers)
        return {"admitted": admitted, "failed": sum(a["failed"] for a in answers),
                "failures": failures, "timed_out": any(a["timed_out"] for a in answers),
                "seconds": seconds, "processes": count,
                "admitted_per_s": round(admitted / seconds, 1) if seconds else None}

    def reset(self) -> int:
        return sum(a["open"] for a in self._all("reset"))

    def wait(self, score: float, timeout: float) -> dict[str, Any]:
        answers = self._all("wait", score=score, timeout=timeout)
        return {"ready": sum(a["ready"] for a in answers),
                "open": sum(a["open"] for a in answers),
                "seconds": max(a["seconds"] for a in answers)}

    def latency(self, writes: list[list[float]]) -> tuple[list[float], int]:
        """Every listener-write latency (seconds), and how many were never seen."""
        answers = self._all("latency", writes=writes)
        values = [x for a in answers for x in a["latencies"]]
        return values, sum(a["missing"] for a in answers)

    def rates(self, start: float, end: float) -> dict[str, Any]:
        answers = self._all("rates", start=start, end=end)
        listeners = sum(a["listeners"] for a in answers)
        events = sum(a["events"] for a in answers)
        seconds = max(end - start, 1e-9)
        bins: list[int] = []
        for a in answers:
            for i, k in enumerate(a["arrivals_per_100ms"]):
                if i >= len(bins):
                    bins.append(0)
                bins[i] += k
        return {"listeners": listeners,
                "per_s_mean": round(events / listeners / seconds, 2) if listeners else 0,
                "events_max": max(a["events_max"] for a in answers),
                "per_s_max_any_1s_window": max(a["per_s_max_any_1s_window"] for a in answers),
                "arrivals_per_100ms": bins}

    def stop(self) -> float:
        """Close everything; the client processes' CPU seconds."""
        cpu = 0.0
        for client in self.clients:
            answer = client.stop()
            cpu += (answer or {}).get("cpu_s", 0.0)
        self.clients = []
        return round(cpu, 2)


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50, p90, p99, max and mean in milliseconds of ``values`` in seconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None,
                "mean_ms": None}
    s = sorted(values)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000.0, 2)

    return {"n": len(s), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "max_ms": round(s[-1] * 1000.0, 2), "mean_ms": round(sum(s) / len(s) * 1000.0, 2)}


def cdf_sample(values: list[float], points: int = 300) -> list[float]:
    """Evenly spaced quantiles of ``values`` (seconds) in milliseconds, for plotting."""
    if not values:
        return []
    s = sorted(values)
    step = max(1, len(s) // points)
    out = [round(v * 1000.0, 2) for v in s[::step]]
    out.append(round(s[-1] * 1000.0, 2))
    return out
