# -*- test-case-name: tests.test_bench_smoke -*-
"""Each benchmark script runs end to end at a tiny size, so the scripts cannot rot.

No timing is asserted here: the figures belong in docs/performance.md. Each script must
print one JSON line with its result and write its PNG plot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, tmp_path: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    plot = tmp_path / f"{script}.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), *args, "--plot", str(plot)],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result: dict[str, Any] = json.loads(lines[0])
    assert result["bench"] == script
    assert plot.stat().st_size > 1000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return result


def test_write_path(tmp_path: Path) -> None:
    result = run_bench("write_path", tmp_path, "--connections", "1,2", "--seconds", "1",
                       "--repeat", "1")
    for target in ("bare-klein", "sqlite"):
        for c in ("1", "2"):
            cell = result["table"][target][c]
            assert cell["requests"] > 0
            assert cell["errors"] == 0
    assert "sqlite" in result["ratio_to_bare_klein"]


def test_fanout(tmp_path: Path) -> None:
    result = run_bench("fanout", tmp_path, "--native", "20", "--pushpin", "20",
                       "--singles", "1", "--sustained", "0.5")
    rows = {(r["mode"], r["system"]): r for r in result["rows"]}
    assert set(rows) == {("native", "project"), ("native", "bare"),
                         ("pushpin", "project"), ("pushpin", "raw")}
    for row in rows.values():
        assert row["connect"]["admitted"] == 20
        assert row["single"]["all_complete"]
        assert row["single"]["runs"][0]["n"] == 20
        assert row["sustained"]["missing"] == 0
    assert {(r["mode"], r["n"]) for r in result["ratios"]} == {("native", 20), ("pushpin", 20)}


def test_burst(tmp_path: Path) -> None:
    result = run_bench("burst", tmp_path, "--rate", "100", "--seconds", "1",
                       "--listeners", "20", "--connections", "4")
    assert result["listeners"] == 20
    assert result["writes"]["ok"] == 100
    assert result["final_score"] == 100
    assert result["final_state"]["all_listeners"]
    assert result["final_state"]["missing"] == 0
    assert result["events_per_listener"]["per_s_mean"] > 0


def test_memory(tmp_path: Path) -> None:
    result = run_bench("memory", tmp_path, "--listeners", "20", "--steps", "2",
                       "--settle", "0.2")
    for name in ("project", "bare"):
        assert result[name]["listeners"] == 20
        assert len(result[name]["points"]) == 3
        assert result[name]["per_listener_kib"] is not None
