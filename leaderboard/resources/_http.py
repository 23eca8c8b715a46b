# -*- test-case-name: tests.test_api -*-
"""Request and response helpers shared by the route modules: JSON bodies, Accept, errors."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from twisted.web.iweb import IRequest
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from leaderboard.errors import InvalidInput, LeaderboardError, PayloadTooLarge, UnsupportedMediaType
from leaderboard.model import encode_json
from leaderboard.resources._site import MAX_BODY

JSON_TYPE = b"application/json; charset=utf-8"


def json_response(request: IRequest, data: object, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", JSON_TYPE)
    request.setHeader(b"Cache-Control", b"no-store")
    return encode_json(data)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(request: IRequest, error: LeaderboardError) -> bytes:
    return json_response(request, error_body(error.code, error.message), error.status)


def preferred_type(request: IRequest, offers: list[str]) -> str | None:
    """The offer the client's ``Accept`` prefers (q-values respected); the first offer
    when there is no ``Accept``; None when nothing offered is acceptable."""
    raw = request.getHeader(b"accept")
    if not raw:
        return offers[0]
    accept = parse_accept_header(raw.decode("latin-1"), MIMEAccept)
    match: str | None = accept.best_match(offers)
    return match


class Body(dict[str, Any]):
    """A parsed request body; ``form`` is True when it came urlencoded (values are text)."""

    form: bool = False

    def integer(self, key: str, default: int) -> object:
        """The field's value, form text converted when it is plainly an integer."""
        value = self.get(key, default)
        return form_int(value) if self.form else value


def read_body(request: IRequest, allowed: set[str]) -> Body:
    """The request body: a JSON object, or a urlencoded form (values as strings).

    An empty body is ``{}``. Unknown fields, a JSON value that is not an object, or
    malformed text are L{InvalidInput}; an unknown content type is 415.
    """
    content = request.content
    raw = content.read(MAX_BODY + 1) if content is not None else b""
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"request body over {MAX_BODY} bytes")
    if not raw.strip():
        return Body()
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    is_form = ctype == b"application/x-www-form-urlencoded"
    # curl -d sends JSON labelled as a form; a body that is clearly a JSON object is JSON.
    if (
        ctype in (b"", b"application/json")
        or ctype.endswith(b"+json")
        or (is_form and raw.lstrip().startswith(b"{"))
    ):
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidInput(f"request body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidInput("request body must be a JSON object")
    elif is_form:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("request body is not a valid urlencoded form") from None
        data = {}
        for k, v in pairs:
            if k in data:
                raise InvalidInput(f"form field {k!r} given twice")
            data[k] = v
    else:
        raise UnsupportedMediaType("send application/json or application/x-www-form-urlencoded")
    unknown = set(data) - allowed
    if unknown:
        names = ", ".join(sorted(repr(k) for k in unknown))
        raise InvalidInput(f"unknown field(s) {names}; allowed: {', '.join(sorted(allowed))}")
    body = Body(data)
    body.form = is_form and not raw.lstrip().startswith(b"{")
    return body


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def form_int(value: object) -> object:
    """A form field's text as an int when it is plainly one (``-12``), else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 20:
            return int(text)
    return value
