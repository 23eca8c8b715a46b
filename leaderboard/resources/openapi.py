# -*- test-case-name: tests.test_openapi -*-
"""The OpenAPI 3.1 description of the whole API, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from leaderboard import __version__
from leaderboard.model import (
    MAX_AMOUNT,
    MAX_LIMIT,
    MAX_METADATA_BYTES,
    MAX_NAME_LENGTH,
    MAX_SCORE,
    OPERATORS,
    ORDERS,
    encode_json,
)
from leaderboard.resources._app import AppContext
from leaderboard.resources._site import MAX_BODY
from leaderboard.resources.page import STATIC_TYPES
from leaderboard.resources.players import MAX_AROUND

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
SSE = "text/event-stream"
HTML = "text/html"

_ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
#: Names: no control characters (Unicode category Cc).
_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _error(
    description: str, codes: list[str], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "allOf": [
            _ref("schemas", "Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _path_param(name: str, what: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"the {what} id",
        "schema": _ref("schemas", "Id"),
        "example": example,
    }


def _limit(default: str) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"how many to return (default: {default})",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    }


#: ``?offset=`` of the paginated listings.
_OFFSET: dict[str, Any] = {
    "name": "offset",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
}


def _body(schema_name: str, required: bool, example: dict[str, Any]) -> dict[str, Any]:
    schema = _ref("schemas", schema_name)
    return {
        "required": required,
        "description": (
            "JSON, or a urlencoded form (values as text; an integer field must be a plain "
            f"integer). At most {MAX_BODY} bytes."
        ),
        "content": {
            JSON: {"schema": schema, "example": example},
            FORM: {"schema": schema, "example": example},
        },
    }


_COMMON = {
    "405": _ref("responses", "MethodNotAllowed"),
}
_STORE = {"503": _ref("responses", "Unavailable")}
_WRITE = {
    "400": _ref("responses", "BadRequest"),
    "401": _ref("responses", "Unauthorized"),
    "403": _ref("responses", "Forbidden"),
    "413": _ref("responses", "PayloadTooLarge"),
    "415": _ref("responses", "UnsupportedMediaType"),
}
_WRITE_SECURITY: list[dict[str, list[str]]] = [{}, {"apiKey": []}]


def _components() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "stable, machine-readable"},
                    "message": {"type": "string", "minLength": 1, "description": "for people"},
                },
            }
        },
    }
    score = {"type": "integer", "minimum": -MAX_SCORE, "maximum": MAX_SCORE}
    standing = {
        "type": "object",
        "required": ["id", "name", "score", "rank"],
        "additionalProperties": False,
        "properties": {
            "id": _ref("schemas", "Id"),
            "name": _ref("schemas", "Name"),
            "score": score,
            "rank": {
                "type": "integer",
                "minimum": 1,
                "description": "1 + the number of players on the board with a higher score",
            },
        },
    }
    player = {
        "type": "object",
        "required": ["id", "name", "score", "rank", "board"],
        "additionalProperties": False,
        "properties": {**standing["properties"], "board": _ref("schemas", "Id")},  # type: ignore[dict-item]
    }
    options = {
        "order": {
            "enum": list(ORDERS),
            "description": "desc: highest score first (the default); asc: lowest first",
        },
        "operator": {
            "enum": list(OPERATORS),
            "description": "how POST .../score/ combines a submitted score: incr adds, set "
            "replaces, best keeps the better one for the board's order",
        },
        "metadata": {
            "type": "object",
            "description": f"free-form JSON, at most {MAX_METADATA_BYTES} bytes encoded",
        },
    }
    board = {
        "type": "object",
        "required": ["id", "name", "order", "operator", "metadata", "players"],
        "additionalProperties": False,
        "properties": {
            "id": _ref("schemas", "Id"),
            "name": _ref("schemas", "Name"),
            **options,
            "players": {
                "type": "array",
                "items": _ref("schemas", "Standing"),
                "maxItems": MAX_LIMIT,
                "description": "in rank order (score descending, ascending on an asc "
                "board); equal scores by player id (bytes)",
            },
        },
    }
    summary = {
        "type": "object",
        "required": ["id", "name", "players"],
        "additionalProperties": False,
        "properties": {
            "id": _ref("schemas", "Id"),
            "name": _ref("schemas", "Name"),
            "players": {"type": "integer", "minimum": 0, "description": "how many players"},
        },
    }
    board_list = {
        "type": "object",
        "required": ["boards", "offset", "limit", "next"],
        "additionalProperties": False,
        "properties": {
            "boards": {"type": "array", "items": _ref("schemas", "BoardSummary")},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "next": {
                "type": ["string", "null"],
                "description": "the next page's path, or null on the last page",
            },
        },
    }
    new_player = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "id": {**_ref("schemas", "Id"), "description": "chosen by the server when left out"},
            "name": _ref("schemas", "Name"),
        },
    }
    new_board = {
        **new_player,
        "properties": {**new_player["properties"], **options},  # type: ignore[dict-item]
    }
    player_page = {
        "type": "object",
        "required": ["board", "players", "offset", "limit", "next"],
        "additionalProperties": False,
        "properties": {
            "board": _ref("schemas", "Id"),
            "players": {"type": "array", "items": _ref("schemas", "Standing")},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "next": {"type": ["string", "null"]},
        },
    }
    around = {
        "type": "object",
        "required": ["board", "player", "players"],
        "additionalProperties": False,
        "properties": {
            "board": _ref("schemas", "Id"),
            "player": _ref("schemas", "Id"),
            "players": {"type": "array", "items": _ref("schemas", "Standing")},
        },
    }
    submit = {
        "type": "object",
        "required": ["score"],
        "additionalProperties": False,
        "properties": {
            "score": {
                **score,
                "description": "combined with the stored score by the board's operator",
            },
            "name": {
                **_ref("schemas", "Name"),
                "description": "with a name, a missing player is created",
            },
        },
    }
    rename = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": _ref("schemas", "Name")},
    }
    score_add = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "amount": {
                "type": "integer",
                "minimum": -MAX_AMOUNT,
                "maximum": MAX_AMOUNT,
                "default": 1,
                "description": "added to the score (may be negative); the score must stay "
                f"within -{MAX_SCORE}..{MAX_SCORE}, else 400 score_out_of_range",
            }
        },
    }
    retry_after = {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
    return {
        "schemas": {
            "Id": {"type": "string", "pattern": _ID_PATTERN, "minLength": 1, "maxLength": 64},
            "Name": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_NAME_LENGTH,
                "pattern": _NAME_PATTERN,
                "description": "1 to 64 characters, no control characters",
            },
            "Error": error,
            "Standing": standing,
            "Player": player,
            "Board": board,
            "BoardSummary": summary,
            "BoardList": board_list,
            "NewBoard": new_board,
            "NewPlayer": new_player,
            "PlayerPage": player_page,
            "Around": around,
            "ScoreSubmission": submit,
            "Rename": rename,
            "ScoreAdd": score_add,
        },
        "responses": {
            "BadRequest": _error(
                "bad input: id, name, amount, limit, offset, body or query",
                ["invalid_input", "score_out_of_range"],
            ),
            "Unauthorized": _error(
                "no API key given, or a malformed Authorization header (only when the "
                "server has LEADERBOARD_API_KEYS)",
                ["unauthorized"],
                {
                    "WWW-Authenticate": {
                        "required": True,
                        "schema": {"type": "string", "const": 'Bearer realm="leaderboard"'},
                    }
                },
            ),
            "Forbidden": _error("the API key is not one this server accepts", ["forbidden"]),
            "NotFound": _error("unknown board, player or path", ["not_found"]),
            "MethodNotAllowed": _error(
                "the path exists but not with this method",
                ["method_not_allowed"],
                {"Allow": {"required": True, "schema": {"type": "string"}}},
            ),
            "NotAcceptable": _error(
                "Accept names nothing this resource can give", ["not_acceptable"]
            ),
            "Conflict": _error("the id is taken", ["already_exists"]),
            "PayloadTooLarge": _error(
                f"the body is over {MAX_BODY} bytes (answered before it is read; the "
                "connection then closes)",
                ["payload_too_large"],
            ),
            "UnsupportedMediaType": _error(
                f"a body that is neither {JSON} nor {FORM}", ["unsupported_media_type"]
            ),
            "Unavailable": _error(
                "the database cannot be reached right now; retry", ["unavailable"]
            ),
        },
        "headers": {"Retry-After": retry_after},
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "one of LEADERBOARD_API_KEYS; writes need it when that is set",
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the server has."""
    board_param = _path_param("board", "board's", "demo")
    player_param = _path_param("player", "player's", "stan")
    stream_doc = (
        "Server-Sent Events: first an `update` event with the board's current state, then "
        "one whenever its top N changes (bursts coalesced), and a `: keep-alive` comment "
        "every LEADERBOARD_KEEPALIVE_SECONDS. Each event is `event: update`, `id: <opaque>`, "
        "`data: <the Board JSON on one line>`. When the board is deleted the stream ends with "
        '`event: deleted`, `data: {"id": ..., "deleted": true}`. Through a GRIP proxy '
        "the same bytes come "
        "from the proxy. A reconnecting client (with or without Last-Event-ID) gets the "
        "current state first."
    )
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "operationId": "indexPage",
                "summary": "the live page: the list of boards",
                "tags": ["page"],
                "responses": {
                    "200": {
                        "description": "HTML",
                        "content": {HTML: {"schema": {"type": "string"}}},
                    },
                    **_COMMON,
                },
            }
        },
        "/static/{name}": {
            "get": {
                "operationId": "staticAsset",
                "summary": "a script, style sheet or icon of the live page",
                "tags": ["page"],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(STATIC_TYPES)},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                            "image/svg+xml": {"schema": {"type": "string"}},
                        },
                    },
                    "404": _ref("responses", "NotFound"),
                    **_COMMON,
                },
            }
        },
        "/boards/": {
            "get": {
                "operationId": "listBoards",
                "summary": "the boards, by id, a page at a time",
                "tags": ["boards"],
                "parameters": [
                    _OFFSET,
                    _limit("20"),
                ],
                "responses": {
                    "200": _json("a page of boards", _ref("schemas", "BoardList")),
                    "400": _ref("responses", "BadRequest"),
                    **_STORE,
                    **_COMMON,
                },
            },
            "post": {
                "operationId": "createBoard",
                "summary": "create a board",
                "tags": ["boards"],
                "security": _WRITE_SECURITY,
                "requestBody": _body("NewBoard", True, {"id": "chess", "name": "Chess"}),
                "responses": {
                    "201": _json(
                        "created: the board, with no players",
                        _ref("schemas", "Board"),
                        headers={
                            "Location": {
                                "required": True,
                                "description": "the board's path, /boards/{id}/",
                                "schema": {
                                    "type": "string",
                                    "pattern": "^/boards/[A-Za-z0-9_-]+/$",
                                },
                            }
                        },
                    ),
                    **_WRITE,
                    "409": _ref("responses", "Conflict"),
                    **_STORE,
                    **_COMMON,
                },
            },
        },
        "/boards/{board}/": {
            "get": {
                "operationId": "getBoard",
                "summary": "the board and its top players; or its event stream; or its live page",
                "description": "Content negotiation by Accept (q-values respected; `*/*` alone "
                "means JSON). " + stream_doc,
                "tags": ["boards"],
                "parameters": [board_param, _limit("LEADERBOARD_TOP_N, 5")],
                "responses": {
                    "200": {
                        "description": "the board (JSON), its event stream, or its live page",
                        "headers": {"Vary": {"schema": {"type": "string"}}},
                        "content": {
                            JSON: {"schema": _ref("schemas", "Board")},
                            SSE: {
                                "schema": {"type": "string"},
                                "x-event-data": _ref("schemas", "Board"),
                                "example": 'event: update\nid: 3f5a0c2d1e4b6a79\ndata: {"id":'
                                '"demo","name":"Demo","players":[{"id":"stan","name":"Stan",'
                                '"score":12,"rank":1}]}\n\n',
                            },
                            HTML: {"schema": {"type": "string"}},
                        },
                    },
                    "400": _ref("responses", "BadRequest"),
                    "404": _ref("responses", "NotFound"),
                    "406": _ref("responses", "NotAcceptable"),
                    "503": _error(
                        "the database cannot be reached (unavailable), or this process holds "
                        "as many event streams as it may (too_many_streams, with Retry-After)",
                        ["unavailable", "too_many_streams"],
                        {"Retry-After": _ref("headers", "Retry-After")},
                    ),
                    **_COMMON,
                },
            }
        },
        "/boards/{board}/players/": {
            "post": {
                "operationId": "createPlayer",
                "summary": "create a player on a board, with score 0",
                "tags": ["players"],
                "security": _WRITE_SECURITY,
                "parameters": [board_param],
                "requestBody": _body("NewPlayer", True, {"id": "wendy", "name": "Wendy"}),
                "responses": {
                    "201": _json(
                        "created: the player",
                        _ref("schemas", "Player"),
                        headers={
                            "Location": {
                                "required": True,
                                "description": "the player's path",
                                "schema": {
                                    "type": "string",
                                    "pattern": "^/boards/[A-Za-z0-9_-]+/players/[A-Za-z0-9_-]+/$",
                                },
                            }
                        },
                    ),
                    **_WRITE,
                    "404": _ref("responses", "NotFound"),
                    "409": _ref("responses", "Conflict"),
                    **_STORE,
                    **_COMMON,
                },
            }
        },
        "/boards/{board}/players/{player}/": {
            "get": {
                "operationId": "getPlayer",
                "summary": "one player, with its score and rank",
                "tags": ["players"],
                "parameters": [board_param, player_param],
                "responses": {
                    "200": _json("the player", _ref("schemas", "Player")),
                    "400": _ref("responses", "BadRequest"),
                    "404": _ref("responses", "NotFound"),
                    **_STORE,
                    **_COMMON,
                },
            }
        },
        "/boards/{board}/players/{player}/score-add/": {
            "post": {
                "operationId": "addScore",
                "summary": "add to a player's score, atomically",
                "tags": ["players"],
                "security": _WRITE_SECURITY,
                "parameters": [board_param, player_param],
                "requestBody": _body("ScoreAdd", False, {"amount": 5}),
                "responses": {
                    "200": _json(
                        "the player with its new score and rank", _ref("schemas", "Player")
                    ),
                    **_WRITE,
                    "404": _ref("responses", "NotFound"),
                    **_STORE,
                    **_COMMON,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "liveness: 200 while the process is up",
                "tags": ["operations"],
                "responses": {
                    "200": _json(
                        "up",
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        },
                    ),
                    **_COMMON,
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "readiness: the store answers and the feed loop runs",
                "tags": ["operations"],
                "responses": {
                    "200": _json(
                        "ready",
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ready"}},
                        },
                    ),
                    "503": _error(
                        "not ready; the message says why",
                        ["not_ready"],
                        {"Retry-After": _ref("headers", "Retry-After")},
                    ),
                    **_COMMON,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format, or OpenMetrics on request)",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    **_COMMON,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "this document",
                "tags": ["operations"],
                "responses": {
                    "200": _json("OpenAPI 3.1", {"type": "object", "required": ["openapi"]}),
                    **_COMMON,
                },
            }
        },
    }
    _add_newer_routes(paths, board_param, player_param)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leaderboard",
            "version": __version__,
            "description": (
                "A realtime leaderboard: boards of players with scores, JSON over HTTP, every "
                "change pushed as Server-Sent Events. Every path ending in `/` also answers "
                'without it. Errors are always JSON: `{"error": {"code", "message"}}`; '
                "a method a path does not have is 405 with `Allow`. Rank is competition "
                "ranking (1224). When LEADERBOARD_API_KEYS is set, the POST routes need "
                "`Authorization: Bearer <key>`; reads and streams are always public."
            ),
        },
        "paths": paths,
        "components": _components(),
    }


def _add_newer_routes(
    paths: dict[str, Any], board_param: dict[str, Any], player_param: dict[str, Any]
) -> None:
    """Listing, neighbours, submitted scores, renames and deletes."""
    deleted = {"204": {"description": "deleted"}}
    no_body_write = {
        "401": _ref("responses", "Unauthorized"),
        "403": _ref("responses", "Forbidden"),
        "400": _ref("responses", "BadRequest"),
        "404": _ref("responses", "NotFound"),
        **_STORE,
        **_COMMON,
    }
    paths["/boards/{board}/"]["delete"] = {
        "operationId": "deleteBoard",
        "summary": "delete the board and its players; its streams end with `event: deleted`",
        "tags": ["boards"],
        "security": _WRITE_SECURITY,
        "parameters": [board_param],
        "responses": {**deleted, **no_body_write},
    }
    paths["/boards/{board}/players/"]["get"] = {
        "operationId": "listPlayers",
        "summary": "the whole ranking, a page at a time",
        "tags": ["players"],
        "parameters": [
            board_param,
            _OFFSET,
            _limit("20"),
        ],
        "responses": {
            "200": _json("a page of the ranking", _ref("schemas", "PlayerPage")),
            "400": _ref("responses", "BadRequest"),
            "404": _ref("responses", "NotFound"),
            **_STORE,
            **_COMMON,
        },
    }
    item = paths["/boards/{board}/players/{player}/"]
    item["patch"] = {
        "operationId": "renamePlayer",
        "summary": "rename a player",
        "tags": ["players"],
        "security": _WRITE_SECURITY,
        "parameters": [board_param, player_param],
        "requestBody": _body("Rename", True, {"name": "Stanley"}),
        "responses": {
            "200": _json("the renamed player", _ref("schemas", "Player")),
            **_WRITE,
            "404": _ref("responses", "NotFound"),
            **_STORE,
            **_COMMON,
        },
    }
    item["delete"] = {
        "operationId": "deletePlayer",
        "summary": "delete a player",
        "tags": ["players"],
        "security": _WRITE_SECURITY,
        "parameters": [board_param, player_param],
        "responses": {**deleted, **no_body_write},
    }
    paths["/boards/{board}/players/{player}/score/"] = {
        "post": {
            "operationId": "submitScore",
            "summary": "submit a score, combined by the board's operator (incr, set, best)",
            "tags": ["players"],
            "security": _WRITE_SECURITY,
            "parameters": [board_param, player_param],
            "requestBody": _body("ScoreSubmission", True, {"score": 42}),
            "responses": {
                "200": _json("the player with its new score and rank", _ref("schemas", "Player")),
                **_WRITE,
                "404": _ref("responses", "NotFound"),
                **_STORE,
                **_COMMON,
            },
        }
    }
    paths["/boards/{board}/players/{player}/around/"] = {
        "get": {
            "operationId": "playersAround",
            "summary": "a player with its neighbours above and below, with ranks",
            "tags": ["players"],
            "parameters": [
                board_param,
                player_param,
                {
                    "name": "n",
                    "in": "query",
                    "required": False,
                    "description": "neighbours on each side (default 2)",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_AROUND},
                },
            ],
            "responses": {
                "200": _json(
                    "the player and its neighbours, in rank order", _ref("schemas", "Around")
                ),
                "400": _ref("responses", "BadRequest"),
                "404": _ref("responses", "NotFound"),
                **_STORE,
                **_COMMON,
            },
        }
    }


def install(app: Klein, ctx: AppContext) -> None:
    """Add ``GET /openapi.json``."""
    body = encode_json(document())

    @app.route("/openapi.json", methods=["GET"])
    def openapi(request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        return body
