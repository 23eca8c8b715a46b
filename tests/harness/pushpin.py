# -*- test-case-name: tests.test_pushpin_harness -*-
"""A private zurl + Pushpin pair for integration tests, on free ports under a temp dir."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pytest

__all__ = [
    "SKIP_ENV",
    "PushpinHarness",
    "PushpinNotInstalled",
    "pushpin_fixture",
    "pushpin_for",
]

SKIP_ENV = "LEADERBOARD_SKIP_PUSHPIN"
"""Set to ``1`` to skip every test that needs Pushpin (instead of failing without it)."""

SYSTEM_CONFIG = Path("/etc/pushpin/pushpin.conf")
LIBDIR = "/usr/lib/pushpin"

_INSTALL_HINT = (
    "Pushpin is not installed: run `sudo scripts/install-system-deps` "
    f"(or set {SKIP_ENV}=1 to skip the tests that need it)"
)


PROBE_PATH = "/.pushpin-harness-probe"
"""Requests under this path go to the harness's own start-up probe, not to the origin."""


class PushpinNotInstalled(RuntimeError):
    """``pushpin``, ``zurl`` or Debian's pushpin config is missing."""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def rewrite_ini(text: str, overrides: dict[str, dict[str, str]]) -> str:
    """``text`` (an INI file) with ``overrides[section][key]`` set, keeping everything else.

    Existing keys are replaced in place; missing keys are added at the end of their section;
    missing sections are appended.
    """
    todo = {section: dict(values) for section, values in overrides.items()}
    out: list[str] = []
    section: str | None = None

    def flush(name: str | None) -> None:
        if name is not None and todo.get(name):
            out.extend(f"{key}={value}" for key, value in todo.pop(name).items())
            out.append("")

    for line in text.splitlines():
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            flush(section)
            section = header.group(1)
            out.append(line)
            continue
        entry = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*=", line)
        if section is not None and entry and entry.group(1) in todo.get(section, {}):
            out.append(f"{entry.group(1)}={todo[section].pop(entry.group(1))}")
            continue
        out.append(line)
    flush(section)
    for name, values in todo.items():
        if values:
            out.append(f"[{name}]")
            out.extend(f"{key}={value}" for key, value in values.items())
            out.append("")
    return "\n".join(out) + "\n"


class PushpinHarness:
    """One zurl and one Pushpin (condure, proxy, handler), private to a test.

    Every socket is either a Unix socket under the harness's temp dir or a free TCP port on
    127.0.0.1, so several harnesses run side by side. ``start()`` blocks until the HTTP and
    publish ports accept connections: call it from a plain pytest fixture (outside the
    reactor), not from a running Deferred. Logs stay in ``log_dir`` after ``stop()`` when
    ``keep_dir`` is true (or when start-up failed), for debugging.
    """

    def __init__(
        self,
        origin_port: int,
        *,
        sig_key: str | None = None,
        sig_iss: str = "pushpin",
        routes: list[str] | None = None,
        max_open_requests: int | None = 50,
        message_rate: int = 100000,
        message_hwm: int = 200000,
        debug: bool = True,
        log_level: int = 2,
        keep_dir: bool = False,
        pushpin_bin: str = "pushpin",
        zurl_bin: str = "zurl",
    ) -> None:
        self.origin_port = origin_port
        self.sig_key = sig_key if sig_key is not None else secrets.token_urlsafe(48)
        self.sig_iss = sig_iss
        self.max_open_requests = max_open_requests
        self.message_rate = message_rate
        self.message_hwm = message_hwm
        self.debug = debug
        self.log_level = log_level
        self.keep_dir = keep_dir
        self._routes = routes if routes is not None else [f"* 127.0.0.1:{origin_port}"]
        self._pushpin_bin = pushpin_bin
        self._zurl_bin = zurl_bin
        self._dir: Path | None = None
        self._zurl: subprocess.Popen[bytes] | None = None
        self._pushpin: subprocess.Popen[bytes] | None = None
        self._outputs: list[IO[bytes]] = []
        self._probe_port = 0
        self.http_port = 0
        self.publish_port = 0
        self.start_seconds: float | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """Where clients connect: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grip_url(self) -> str:
        """The GRIP control URI (``GRIP_URL``) with no verify key."""
        return f"http://127.0.0.1:{self.publish_port}"

    @property
    def publish_url(self) -> str:
        """The publish endpoint itself: ``{grip_url}/publish/``."""
        return f"{self.grip_url}/publish/"

    @property
    def grip_url_verified(self) -> str:
        """``grip_url`` with ``verify-key``/``verify-iss`` for this harness's ``sig_key``."""
        key = "base64:" + base64.b64encode(self.sig_key.encode("utf-8")).decode("ascii")
        return f"{self.grip_url}?verify-iss={quote(self.sig_iss)}&verify-key={quote(key)}"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError("harness not started")
        return self._dir

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    # -- lifecycle ---------------------------------------------------------------------------

    @staticmethod
    def check_installed(pushpin_bin: str = "pushpin", zurl_bin: str = "zurl") -> None:
        """Raise ``PushpinNotInstalled`` (with the fix) if anything we need is missing."""
        missing = [
            name for name in (pushpin_bin, zurl_bin, "condure") if shutil.which(name) is None
        ]
        if missing or not SYSTEM_CONFIG.is_file():
            what = ", ".join(missing) if missing else str(SYSTEM_CONFIG)
            raise PushpinNotInstalled(f"{_INSTALL_HINT}; missing: {what}")

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start zurl and Pushpin and wait until both of Pushpin's ports accept connections.

        Free ports are picked by binding port 0, which another process may grab before
        Pushpin does: start-up is retried on fresh ports ``attempts`` times.
        """
        self.check_installed(self._pushpin_bin, self._zurl_bin)
        began = time.monotonic()
        error: Exception | None = None
        probe = ThreadingHTTPServer(("127.0.0.1", 0), _ProbeOrigin)
        probe.daemon_threads = True
        self._probe_port = probe.server_address[1]
        thread = threading.Thread(target=probe.serve_forever, name="pushpin-probe", daemon=True)
        thread.start()
        try:
            for _ in range(attempts):
                try:
                    self._start_once(timeout)
                except _StartFailed as e:
                    error = e
                    self._terminate()
                    continue
                self.start_seconds = time.monotonic() - began
                return
        finally:
            probe.shutdown()
            probe.server_close()
        raise RuntimeError(f"Pushpin did not start: {error}; logs in {self._dir}")

    def _start_once(self, timeout: float) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pp-"))
        run_dir = self._dir / "run"
        log_dir = self._dir / "log"
        run_dir.mkdir()
        log_dir.mkdir()
        self.http_port = _free_port()
        self.publish_port = _free_port()
        self._write_routes()
        zurl_conf = self._dir / "zurl.conf"
        zurl_conf.write_text(self._zurl_config(run_dir))
        pushpin_conf = self._dir / "pushpin.conf"
        pushpin_conf.write_text(self._pushpin_config(run_dir, log_dir))

        self._zurl = self._spawn([self._zurl_bin, f"--config={zurl_conf}"], log_dir / "zurl.log")
        self._pushpin = self._spawn(
            [
                self._pushpin_bin,
                "--config",
                str(pushpin_conf),
                "--loglevel",
                str(self.log_level),
            ],
            log_dir / "pushpin.log",
        )
        deadline = time.monotonic() + timeout
        waiting = [self.http_port, self.publish_port]
        while waiting:
            self._check_alive()
            if time.monotonic() > deadline:
                raise _StartFailed(f"ports {waiting} not open after {timeout}s")
            if _port_open("127.0.0.1", waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.02)
        # Open ports are not enough. Until the handler has connected to the proxy, Pushpin
        # answers 500 "Accept service unavailable."; until ZeroMQ subscriptions settle, a
        # response from zurl can be lost and the request hangs. So hold a stream through the
        # whole chain, giving up on a probe quickly at first.
        wait = 0.25
        while (status := self._probe(wait)) != 200:
            self._check_alive()
            if time.monotonic() > deadline:
                raise _StartFailed(f"probe through Pushpin answered {status} after {timeout}s")
            wait = min(wait * 2, 2.0)
            time.sleep(0.02)

    def _check_alive(self) -> None:
        for name, process in (("zurl", self._zurl), ("pushpin", self._pushpin)):
            if process is not None and process.poll() is not None:
                raise _StartFailed(f"{name} exited with {process.returncode}")

    def _probe(self, wait: float) -> int | str:
        """The status Pushpin gives a GRIP stream hold from the probe origin, or an error."""
        request = (
            f"GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.http_port}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=wait) as s:
                s.sendall(request)
                head = b""
                while b"\r\n" not in head:
                    chunk = s.recv(1024)
                    if not chunk:
                        break
                    head += chunk
        except OSError as e:
            return str(e)
        status = head.split(b"\r\n", 1)[0].split(b" ")
        return int(status[1]) if len(status) > 1 and status[1].isdigit() else repr(head[:80])

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        output = log_path.open("ab")
        self._outputs.append(output)
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=str(self.directory),
            start_new_session=True,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Pushpin and zurl (TERM, then KILL) and remove the temp dir unless kept."""
        self._terminate(timeout)
        if self._dir is not None and not self.keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _terminate(self, timeout: float = 10.0) -> None:
        for process in (self._pushpin, self._zurl):
            if process is None or process.poll() is not None:
                continue
            _signal_group(process, signal.SIGTERM)
        for process in (self._pushpin, self._zurl):
            if process is None:
                continue
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout)
            # Pushpin's runner stops its children on TERM; make sure none outlives it.
            _signal_group(process, signal.SIGKILL)
        self._pushpin = self._zurl = None
        for output in self._outputs:
            output.close()
        self._outputs.clear()

    def __enter__(self) -> PushpinHarness:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------

    def set_routes(self, routes: list[str]) -> None:
        """Rewrite the routes file. Pushpin reloads it by itself, a moment later."""
        self._routes = list(routes)
        if self._dir is not None:
            self._write_routes()

    def _write_routes(self) -> None:
        path = self.directory / "routes"
        temp = path.with_suffix(".new")
        lines = list(self._routes)
        if self._probe_port:
            lines.insert(0, f"*,path_beg={PROBE_PATH} 127.0.0.1:{self._probe_port}")
        temp.write_text("\n".join(lines) + "\n")
        temp.replace(path)

    def _zurl_config(self, run_dir: Path) -> str:
        return "\n".join(
            [
                "[General]",
                f"instance_id=zurl-{self.directory.name}",
                f"in_spec=ipc://{run_dir}/zurl-in",
                f"in_stream_spec=ipc://{run_dir}/zurl-in-stream",
                f"out_spec=ipc://{run_dir}/zurl-out",
                f"in_req_spec=ipc://{run_dir}/zurl-req",
                "ipc_file_mode=600",
                "defpolicy=allow",
                "allow=",
                "deny=",
                "max_open_requests=20000",
                "buffer_size=200000",
                "timeout=600",
                "in_hwm=10000",
                "out_hwm=10000",
                "",
            ]
        )

    def _pushpin_config(self, run_dir: Path, log_dir: Path) -> str:
        text = SYSTEM_CONFIG.read_text().replace("{libdir}", LIBDIR)
        ipc = f"ipc://{run_dir}/pushpin-"
        proxy = {
            "routesfile": str(self.directory / "routes"),
            "debug": "true" if self.debug else "false",
            "sig_iss": self.sig_iss,
            "sig_key": self.sig_key,
            "zurl_out_specs": f"ipc://{run_dir}/zurl-in",
            "zurl_out_stream_specs": f"ipc://{run_dir}/zurl-in-stream",
            "zurl_in_specs": f"ipc://{run_dir}/zurl-out",
            "updates_check": "off",
        }
        if self.max_open_requests is not None:
            proxy["max_open_requests"] = str(self.max_open_requests)
        return rewrite_ini(
            text,
            {
                "global": {"rundir": str(run_dir), "ipc_prefix": "pushpin-", "port_offset": "0"},
                "runner": {
                    "services": "condure,pushpin-proxy,pushpin-handler",
                    "http_port": f"127.0.0.1:{self.http_port}",
                    "logdir": str(log_dir),
                    "log_level": str(self.log_level),
                },
                "proxy": proxy,
                "handler": {
                    "push_in_spec": f"{ipc}push-in",
                    "push_in_sub_specs": f"{ipc}push-in-sub",
                    "push_in_sub_connect": "false",
                    "push_in_http_addr": "127.0.0.1",
                    "push_in_http_port": str(self.publish_port),
                    "stats_spec": f"{ipc}stats",
                    "command_spec": f"{ipc}command",
                    "message_rate": str(self.message_rate),
                    "message_hwm": str(self.message_hwm),
                },
            },
        )


class _StartFailed(Exception):
    pass


class _ProbeOrigin(BaseHTTPRequestHandler):
    """Answers the start-up probe with a GRIP stream hold, which only a ready Pushpin serves."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ready\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Grip-Hold", "stream")
        self.send_header("Grip-Channel", "pushpin-harness-probe")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    # Each process was started in its own session, so its group id is its pid: this only
    # reaches processes this harness started.
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- pytest glue -----------------------------------------------------------------------------


@contextmanager
def pushpin_for(origin_port: int, **options: Any) -> Iterator[PushpinHarness]:
    """A started ``PushpinHarness`` routing to ``origin_port``, stopped afterwards.

    Skips the calling test when ``LEADERBOARD_SKIP_PUSHPIN=1`` (the person running the
    tests asked not to run Pushpin); otherwise a missing Pushpin is an error that says how
    to install it.
    """
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: Pushpin tests skipped on request")
    harness = PushpinHarness(origin_port, **options)
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


def pushpin_fixture(
    origin: str = "origin_port", *, scope: str = "function", **options: Any
) -> Callable[..., Any]:
    """A pytest fixture yielding a ``PushpinHarness`` in front of fixture ``origin``.

    ``origin`` names a fixture giving the origin's port (an int, or anything with ``.port``
    or ``.getHost().port``, such as a Twisted ``IListeningPort``). In a conftest::

        pushpin = pushpin_fixture("origin_port")
    """

    @pytest.fixture(scope=scope)  # type: ignore[call-overload, untyped-decorator]
    def _pushpin(request: pytest.FixtureRequest) -> Iterator[PushpinHarness]:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{SKIP_ENV}=1: Pushpin tests skipped on request")
        with pushpin_for(_port_of(request.getfixturevalue(origin)), **options) as harness:
            yield harness

    return _pushpin  # type: ignore[no-any-return]


def _port_of(value: Any) -> int:
    if isinstance(value, int):
        return value
    if hasattr(value, "getHost"):
        return int(value.getHost().port)
    return int(value.port)
