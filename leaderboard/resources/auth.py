# -*- test-case-name: tests.test_auth -*-
"""Write authorization: ``Authorization: Bearer <key>`` checked against the configured API keys."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from leaderboard.errors import Forbidden, Unauthorized

log = Logger(namespace="leaderboard.auth")

#: The ``WWW-Authenticate`` challenge sent with every 401.
CHALLENGE = b'Bearer realm="leaderboard"'

#: An API key: RFC 7235 token68 characters, so that it fits in a Bearer header as it is.
_KEY = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}\Z")
_BEARER = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/=-]+) *\Z")


def parse_api_keys(value: str | None) -> list[str]:
    """``LEADERBOARD_API_KEYS``: comma-separated keys; blanks around commas are ignored.

    Raises ValueError (naming the position, never the key) when a key has characters a
    Bearer token cannot carry. An unset or empty value means no keys: writes are open.
    """
    if value is None:
        return []
    keys: list[str] = []
    for position, raw in enumerate(value.split(","), start=1):
        key = raw.strip()
        if not key:
            continue
        if not _KEY.match(key):
            raise ValueError(
                f"key {position} must be 1 to 512 characters of A-Z, a-z, 0-9 and -._~+/="
            )
        keys.append(key)
    return keys


def _digest(token: bytes) -> bytes:
    # Comparing fixed-length digests keeps even the keys' lengths out of the timing.
    return hashlib.sha256(token).digest()


def bearer_token(request: IRequest) -> bytes | None:
    """The token of a well-formed ``Authorization: Bearer <token>`` header, else None."""
    values = request.requestHeaders.getRawHeaders(b"authorization") or []
    if len(values) != 1:
        return None
    match = _BEARER.match(values[0].strip())
    return match.group(1) if match else None


def make_authorizer(keys: Sequence[str]) -> Callable[[IRequest], None]:
    """The ``AppContext.authorize_write`` check for these keys.

    With no keys every write is allowed. Otherwise the request needs
    ``Authorization: Bearer <key>`` naming one of them: no header (or a malformed one) is
    L{Unauthorized} with a ``WWW-Authenticate`` challenge, a wrong key is L{Forbidden}.
    The token is compared with every key in constant time, whichever matches.
    """
    digests = [_digest(k.encode("ascii")) for k in keys]
    if not digests:
        return lambda request: None

    def authorize(request: IRequest) -> None:
        token = bearer_token(request)
        if token is None:
            request.setHeader(b"WWW-Authenticate", CHALLENGE)
            raise Unauthorized("this server needs an API key: Authorization: Bearer <key>")
        presented = _digest(token)
        matched = 0
        for digest in digests:
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            log.info(
                "refused a write with an unknown API key: {method} {path}",
                method=request.method,
                path=request.path,
            )
            raise Forbidden("this API key may not write")

    return authorize
