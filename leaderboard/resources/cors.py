# -*- test-case-name: tests.test_cors -*-
"""CORS: which web origins may call the API from a browser, and answers to preflights."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from werkzeug.routing import Map

from leaderboard.model import encode_json

ALLOW_METHODS = ("GET", "POST", "OPTIONS")
ALLOW_HEADERS = b"Content-Type, Authorization, Last-Event-ID"
EXPOSE_HEADERS = b"Location, Retry-After"
#: Seconds a browser may cache a preflight answer (browsers cap it: Chromium at 2 hours).
MAX_AGE = b"600"
ANY = "*"


def parse_cors_origins(value: str | None) -> list[str]:
    """``LEADERBOARD_CORS_ORIGINS``: ``*`` (the default), or comma-separated origins.

    An origin is ``scheme://host[:port]`` with nothing after it; it is kept lowercased,
    the way browsers send it. ``null`` is refused: sandboxed pages and ``file:`` URLs send
    it, so allowing it would allow them all. Raises ValueError on a malformed entry.
    """
    if value is None or not value.strip():
        return [ANY]
    origins: list[str] = []
    for raw in value.split(","):
        origin = raw.strip().lower().rstrip("/")
        if not origin:
            continue
        if origin == ANY:
            origins.append(ANY)
            continue
        if origin == "null":
            raise ValueError("the origin 'null' may not be allowed (any sandboxed page sends it)")
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(f"{raw.strip()!r} is not an origin like https://example.com[:port]")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"{raw.strip()!r} has a bad port") from None
        origins.append(origin)
    if ANY in origins and len(origins) > 1:
        raise ValueError("'*' cannot be combined with a list of origins")
    return origins or [ANY]


def routed_methods(url_map: Map) -> set[str]:
    """Every method some route of a Klein app's ``url_map`` answers (for ``methods=``)."""
    return {m for rule in url_map.iter_rules() for m in (rule.methods or ())}


class CorsResource(Resource):
    """Wraps the whole API: CORS headers on every answer, and the preflight ``OPTIONS``.

    With ``*`` every answer carries ``Access-Control-Allow-Origin: *``. With a list, an
    allowed ``Origin`` is echoed back and ``Vary: Origin`` is added; an origin not on the
    list gets no CORS headers at all (its browser then hides the answer from the page),
    and its preflight is refused with 403. ``methods`` are the ones a preflight allows
    (give L{routed_methods} of the app). No answer allows credentials (cookies): the
    API uses none, and a Bearer key is an ordinary request header, allowed by name.
    """

    isLeaf = True

    def __init__(
        self,
        wrapped: IResource,
        origins: Sequence[str] = (ANY,),
        methods: Iterable[str] = ALLOW_METHODS,
    ) -> None:
        super().__init__()
        self._wrapped = wrapped
        ordered = sorted({m.upper() for m in methods} - {"HEAD"} | {"OPTIONS"})
        self._methods = ", ".join(ordered).encode("ascii")
        self._any = ANY in origins
        self._origins = frozenset(o for o in origins if o != ANY)

    def _allowed(self, origin: bytes | None) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for this request, if any."""
        if self._any:
            return b"*"
        if origin is None:
            return None
        try:
            text = origin.decode("ascii").strip().lower()
        except UnicodeDecodeError:
            return None
        return text.encode("ascii") if text in self._origins else None

    def render(self, request: IRequest) -> bytes | int:
        origin = request.getHeader(b"origin")
        allow = self._allowed(origin)
        if not self._any:
            request.responseHeaders.addRawHeader(b"Vary", b"Origin")
        if (
            request.method == b"OPTIONS"
            and origin is not None
            and request.getHeader(b"access-control-request-method") is not None
        ):
            return self._preflight(request, allow)
        if allow is not None:
            request.setHeader(b"Access-Control-Allow-Origin", allow)
            request.setHeader(b"Access-Control-Expose-Headers", EXPOSE_HEADERS)
        resource = getChildForRequest(self._wrapped, request)
        return resource.render(request)  # type: ignore[no-any-return]

    def _preflight(self, request: IRequest, allow: bytes | None) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        if allow is None:
            request.setResponseCode(403)
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            return encode_json(
                {"error": {"code": "forbidden", "message": "this origin may not call the API"}}
            )
        request.setResponseCode(204)
        request.setHeader(b"Access-Control-Allow-Origin", allow)
        request.setHeader(b"Access-Control-Allow-Methods", self._methods)
        request.setHeader(b"Access-Control-Allow-Headers", ALLOW_HEADERS)
        request.setHeader(b"Access-Control-Max-Age", MAX_AGE)
        return b""
