# -*- test-case-name: tests.test_model -*-
"""Board and player values, their validation, and their one JSON and SSE rendering."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from leaderboard.errors import InvalidInput, ScoreOutOfRange

#: Largest absolute score: JavaScript's Number.MAX_SAFE_INTEGER, so every client reads it exactly.
MAX_SCORE = 2**53 - 1
#: Largest absolute amount one score-add may carry.
MAX_AMOUNT = 10**9
#: Default and bounds of the top-N size.
DEFAULT_LIMIT = 5
MAX_LIMIT = 100
MAX_NAME_LENGTH = 64

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


#: Board orders: ``desc`` (highest score first, the default) or ``asc`` (lowest first,
#: for times and the like).
ORDERS = ("desc", "asc")
#: How ``POST .../score/`` combines a submitted score with the stored one.
OPERATORS = ("incr", "set", "best")
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    order: str = "desc"
    operator: str = "incr"
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True)
class Player:
    """A player's stored row; ``board`` is the id of the board it belongs to."""

    board: str
    id: str
    name: str
    score: int


@dataclass(frozen=True)
class Standing:
    """A player with its competition rank on its board."""

    player: Player
    rank: int


@dataclass(frozen=True)
class BoardView:
    """A board and its top players, in rank order: what GET, SSE and GRIP all show."""

    board: Board
    standings: tuple[Standing, ...]


# -- validation ---------------------------------------------------------------------------


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid board or player id, else raise L{InvalidInput}."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(f"{what} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def check_name(value: object, what: str = "name") -> str:
    """A display name: a string of 1..64 characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} must be 1 to {MAX_NAME_LENGTH} characters long")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def check_amount(value: object) -> int:
    """A score increment: an integer (not a bool, float or string) with |n| <= 10^9."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("amount must be an integer")
    if abs(value) > MAX_AMOUNT:
        raise InvalidInput(f"amount must be between -{MAX_AMOUNT} and {MAX_AMOUNT}")
    return value


def check_score(score: int) -> int:
    """Refuse a resulting score outside +-(2^53 - 1)."""
    if abs(score) > MAX_SCORE:
        raise ScoreOutOfRange(f"the score would leave the range -{MAX_SCORE}..{MAX_SCORE}")
    return score


def check_limit(value: object) -> int:
    """The ``?limit=`` query argument: an integer 1..100."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 3:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return value


def check_choice(value: object, what: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{what} must be one of: {', '.join(choices)}")
    return value


def check_metadata(value: object) -> dict[str, Any]:
    """Free-form board metadata: a JSON object of at most 4 KiB once encoded."""
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


def check_score_value(value: object, what: str = "score") -> int:
    """A submitted score: an integer (not a bool, float or string) within +-(2^53 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer")
    if abs(value) > MAX_SCORE:
        raise InvalidInput(f"{what} must be between -{MAX_SCORE} and {MAX_SCORE}")
    return value


def apply_operator(operator: str, order: str, old: int | None, submitted: int) -> int:
    """The score a submission leaves: ``incr`` adds, ``set`` replaces, ``best`` keeps the
    better of the two for the board's order. A new player (``old`` None) starts at the
    submitted score under every operator."""
    if old is None:
        return check_score(submitted)
    if operator == "incr":
        return check_score(old + submitted)
    if operator == "set":
        return submitted
    return max(old, submitted) if order == "desc" else min(old, submitted)


def new_id() -> str:
    """A fresh random id that passes L{check_id} (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


# -- ranking ------------------------------------------------------------------------------


def rank_key(player: Player, order: str = "desc") -> tuple[int, str]:
    """The documented order on a board: score descending (ascending on an ``asc`` board),
    then player id ascending."""
    return (-player.score if order == "desc" else player.score, player.id)


def rank_all(players: list[Player], order: str = "desc") -> list[Standing]:
    """Competition ranks ("1224") for a list of one board's players, in rank order."""
    ordered = sorted(players, key=lambda p: rank_key(p, order))
    out: list[Standing] = []
    for i, p in enumerate(ordered):
        if i and ordered[i - 1].score == p.score:
            rank = out[-1].rank
        else:
            rank = i + 1
        out.append(Standing(p, rank))
    return out


# -- rendering ----------------------------------------------------------------------------


def standing_data(s: Standing) -> dict[str, Any]:
    p = s.player
    return {"id": p.id, "name": p.name, "score": p.score, "rank": s.rank}


def player_data(s: Standing) -> dict[str, Any]:
    data = standing_data(s)
    data["board"] = s.player.board
    return data


def board_info(board: Board) -> dict[str, Any]:
    """A board without its players: id, name, order, operator, metadata."""
    return {
        "id": board.id,
        "name": board.name,
        "order": board.order,
        "operator": board.operator,
        "metadata": board.metadata,
    }


def board_data(view: BoardView) -> dict[str, Any]:
    data = board_info(view.board)
    data["players"] = [standing_data(s) for s in view.standings]
    return data


def ranked_run(players: list[Player], first_rank: int, first_position: int) -> list[Standing]:
    """Competition ranks for a consecutive run of a board's ranking.

    ``first_rank`` is the rank of ``players[0]`` and ``first_position`` its 1-based place in
    the full ordering; a later player's rank is its position unless it ties the one before.
    """
    out: list[Standing] = []
    for i, p in enumerate(players):
        if i == 0:
            rank = first_rank
        elif out[-1].player.score == p.score:
            rank = out[-1].rank
        else:
            rank = first_position + i
        out.append(Standing(p, rank))
    return out


def encode_json(data: object) -> bytes:
    """Compact UTF-8 JSON, one line, newline-terminated."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Event:
    """One rendered SSE ``update`` event and its id (a digest of its data)."""

    id: str
    data: bytes
    encoded: bytes
    #: The stream's last event (the board was deleted): listeners are closed after it.
    final: bool = False


def deleted_event(board_id: str) -> Event:
    """The last event of a deleted board's streams: ``event: deleted``."""
    data = json.dumps({"id": board_id, "deleted": True}, separators=(",", ":")).encode("utf-8")
    event_id = hashlib.sha256(b"deleted:" + data).hexdigest()[:16]
    encoded = b"event: deleted\nid: " + event_id.encode("ascii") + b"\ndata: " + data + b"\n\n"
    return Event(event_id, data, encoded, final=True)


def board_event(view: BoardView) -> Event:
    """The SSE ``update`` event for a board view: identical bytes natively and through GRIP."""
    data = json.dumps(board_data(view), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    event_id = hashlib.sha256(data).hexdigest()[:16]
    encoded = b"event: update\nid: " + event_id.encode("ascii") + b"\ndata: " + data + b"\n\n"
    return Event(event_id, data, encoded)
