"""A minimal blocking SSE client on a thread, for integration tests against real servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit


class SseClient:
    """Opens ``GET url`` with ``Accept: text/event-stream`` and collects events.

    Reading happens on a daemon thread, so a test (outside the reactor) can wait for
    events with a deadline. ``events`` holds ``(event, id, data)`` tuples; ``comments``
    counts ``:`` lines.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 15.0):
        self.url = url
        self.headers = headers or {}
        self.timeout = timeout
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.events: list[tuple[str, str, str]] = []
        self.comments = 0
        self.closed = False
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SseClient:
        parts = urlsplit(self.url)
        sock = socket.create_connection((parts.hostname, parts.port or 80), self.timeout)
        sock.settimeout(None)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._sock = sock
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._sock is not None
        f = self._sock.makefile("rb")
        try:
            status = f.readline().decode("latin-1").split()
            self.status = int(status[1]) if len(status) > 1 else 0
            while True:
                line = f.readline().decode("latin-1").rstrip("\r\n")
                if not line:
                    break
                k, _, v = line.partition(":")
                self.response_headers[k.strip().lower()] = v.strip()
            chunked = self.response_headers.get("transfer-encoding", "") == "chunked"
            buffer = b""
            while True:
                if chunked:
                    size_line = f.readline()
                    if not size_line:
                        break
                    size = int(size_line.strip() or b"0", 16)
                    if size == 0:
                        break
                    data = f.read(size)
                    f.readline()
                else:
                    data = f.read1(65536)  # type: ignore[attr-defined]
                    if not data:
                        break
                buffer += data
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self._block(block.decode("utf-8"))
        except OSError:
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def _block(self, block: str) -> None:
        name, event_id, data = "message", "", []
        comment = False
        for line in block.split("\n"):
            if line.startswith(":"):
                comment = True
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
        with self._cond:
            if data:
                self.events.append((name, event_id, "\n".join(data)))
            elif comment:
                self.comments += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return bool(predicate(self))
                self._cond.wait(left)
            return True

    def boards(self) -> list[dict[str, Any]]:
        return [json.loads(d) for name, _, d in self.events if name == "update"]

    def score_of(self, player: str) -> int | None:
        boards = self.boards()
        if not boards:
            return None
        for p in boards[-1]["players"]:
            if p["id"] == player:
                return int(p["score"])
        return None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)
