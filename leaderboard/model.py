# -*- test-case-name: tests.test_model -*-
"""Board and player values, their validation, and their one JSON and SSE rendering."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Board:
    id: str
    name: str


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


def new_id() -> str:
    """A fresh random id that passes L{check_id} (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


# -- ranking ------------------------------------------------------------------------------


def rank_key(player: Player) -> tuple[int, str]:
    """The documented order on a board: score descending, then player id ascending."""
    return (-player.score, player.id)


def rank_all(players: list[Player]) -> list[Standing]:
    """Competition ranks ("1224") for a list of one board's players, in rank order."""
    ordered = sorted(players, key=rank_key)
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


def board_data(view: BoardView) -> dict[str, Any]:
    return {
        "id": view.board.id,
        "name": view.board.name,
        "players": [standing_data(s) for s in view.standings],
    }


def encode_json(data: object) -> bytes:
    """Compact UTF-8 JSON, one line, newline-terminated."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Event:
    """One rendered SSE ``update`` event and its id (a digest of its data)."""

    id: str
    data: bytes
    encoded: bytes


def board_event(view: BoardView) -> Event:
    """The SSE ``update`` event for a board view: identical bytes natively and through GRIP."""
    data = json.dumps(board_data(view), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    event_id = hashlib.sha256(data).hexdigest()[:16]
    encoded = b"event: update\nid: " + event_id.encode("ascii") + b"\ndata: " + data + b"\n\n"
    return Event(event_id, data, encoded)
