"""Run ``twistd -n leaderboard`` as a real subprocess on a free port, for integration tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"leaderboard listening on (http://[0-9.]+:(\d+)/)")


def twistd_path() -> str:
    """The twistd beside this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "twistd"
    return str(candidate) if candidate.exists() else "twistd"


class ServerProcess:
    """One ``twistd -n leaderboard`` process.

    The working tree is put first on PYTHONPATH so the code under test is the checkout's;
    ``installed=True`` runs it from a neutral directory with no PYTHONPATH, so only the
    pip-installed package (and its plugin) can be found.
    """

    def __init__(
        self,
        workdir: Path,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        installed: bool = False,
        port: str = "tcp:0:interface=127.0.0.1",
    ) -> None:
        self.workdir = workdir
        self.args = args or []
        self.extra_env = env or {}
        self.installed = installed
        self.port_spec = port
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.url = ""
        self.port = 0
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0, wait_ready: bool = True) -> ServerProcess:
        """Start and wait until it listens and (``wait_ready``) its store is ready and the
        demo board, if any, is seeded."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "GRIP_URL", "PORT", "LEADERBOARD_"))
        }
        if self.installed:
            env.pop("PYTHONPATH", None)
        else:
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(self.extra_env)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._listening.clear()
        self.lines = []
        cmd = [
            twistd_path(),
            "-n",
            "--pidfile=",
            "leaderboard",
            "--port",
            self.port_spec,
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("twistd did not start:\n" + self.output())
        if wait_ready:
            self.wait_for_line(r"StoreService#info\] store ready", timeout)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = _LISTENING.search(line)
            if m:
                self.url = m.group(1).rstrip("/")
                self.port = int(m.group(2))
                self._listening.set()

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r}:\n{self.output()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("twistd did not stop on SIGTERM:\n" + self.output()) from None
        if self._reader is not None:
            self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill() if exc[0] else self.stop()
