# -*- test-case-name: tests.test_integration -*-
"""The twisted.web Site: bounded request bodies and idle timeouts."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from leaderboard.model import encode_json

#: Largest request body accepted, in bytes.
MAX_BODY = 64 * 1024

_TOO_LARGE = encode_json(
    {"error": {"code": "payload_too_large", "message": f"request body over {MAX_BODY} bytes"}}
)


class BoundedRequest(Request):
    """A request that refuses a body over L{MAX_BODY} bytes with 413, before buffering it.

    A declared ``Content-Length`` over the bound is answered at once; a chunked body is
    counted as it arrives. Either way the connection is closed, so the rest of the body is
    never read.
    """

    max_body = MAX_BODY

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        # twisted.web announces its name and version in ``Server``; this server does not.
        if (name.lower() if isinstance(name, bytes) else name.lower().encode()) == b"server":
            return
        super().setHeader(name, value)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.content is None:
            return
        if self.content.tell() + len(data) > self.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self) -> None:
        self.content = None
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(_TOO_LARGE)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + _TOO_LARGE
        )
        self.channel.loseConnection()  # type: ignore[attr-defined]


class LeaderboardSite(Site):
    """A Site with L{BoundedRequest}, a short idle timeout, and a choice of access log:
    ``"on"`` (a line per request in the server's log), ``"off"``, or a file path (combined
    log format, as twisted.web writes it)."""

    requestFactory = BoundedRequest

    def __init__(self, resource: IResource, idle_timeout: float = 60.0,
                 access_log: str = "off", **kw: Any) -> None:
        log_path = None if access_log in ("on", "off") else access_log
        super().__init__(resource, timeout=idle_timeout, logPath=log_path, **kw)
        self.displayTracebacks = False
        self._access_log_off = access_log == "off"

    def log(self, request: Any) -> None:
        if not self._access_log_off:
            super().log(request)
