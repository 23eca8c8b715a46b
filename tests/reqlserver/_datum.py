# -*- test-case-name: tests.test_reqlserver -*-
"""Datum values of the test server: RethinkDB ordering, type names, printing and JSON."""

from __future__ import annotations

import json
import math
from typing import Any

# The largest integer a double holds exactly; integral numbers up to this print as ints.
_EXACT_INT = 2**53


class Bound:
    """``r.minval`` / ``r.maxval``: below and above every other datum."""

    def __init__(self, name: str, rank: int) -> None:
        self.name = name
        self.rank = rank

    def __repr__(self) -> str:
        return f"r.{self.name}"


MINVAL = Bound("minval", 0)
MAXVAL = Bound("maxval", 99)

# RethinkDB sorts different types by type name: ARRAY < BOOL < NULL < NUMBER < OBJECT <
# PTYPE<BINARY> < PTYPE<GEOMETRY> < PTYPE<TIME> < STRING.
_RANK_ARRAY = 1
_RANK_BOOL = 2
_RANK_NULL = 3
_RANK_NUMBER = 4
_RANK_OBJECT = 5
_RANK_BINARY = 6
_RANK_GEOMETRY = 7
_RANK_TIME = 8
_RANK_STRING = 9


def num(value: float | int) -> float | int:
    """A number as RethinkDB holds it (a double), integral values kept as Python ints."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= _EXACT_INT:
            return int(value)
        return value
    if abs(value) > _EXACT_INT:
        return float(value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ptype(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("$reql_type$")
        if isinstance(kind, str):
            return kind
    return None


def type_name(value: Any) -> str:
    """The name RethinkDB uses for a datum's type in error messages."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "BOOL"
    if is_number(value):
        return "NUMBER"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        kind = ptype(value)
        return f"PTYPE<{kind}>" if kind else "OBJECT"
    if isinstance(value, Bound):
        return "MINVAL" if value is MINVAL else "MAXVAL"
    return type(value).__name__.upper()


def sort_key(value: Any) -> tuple[Any, ...]:
    """A key whose tuple order is RethinkDB's datum order (arrays element-wise, shorter
    first; MINVAL/MAXVAL below/above everything, also inside arrays)."""
    if isinstance(value, Bound):
        return (value.rank,)
    if value is None:
        return (_RANK_NULL,)
    if isinstance(value, bool):
        return (_RANK_BOOL, value)
    if is_number(value):
        return (_RANK_NUMBER, value)
    if isinstance(value, str):
        return (_RANK_STRING, value)
    if isinstance(value, list):
        return (_RANK_ARRAY, tuple(sort_key(item) for item in value))
    if isinstance(value, dict):
        kind = ptype(value)
        if kind == "TIME":
            return (_RANK_TIME, value.get("epoch_time", 0))
        if kind == "BINARY":
            return (_RANK_BINARY, str(value.get("data", "")))
        if kind == "GEOMETRY":
            return (_RANK_GEOMETRY, canonical(value))
        return (_RANK_OBJECT, tuple((k, sort_key(value[k])) for k in sorted(value)))
    raise TypeError(f"not a datum: {value!r}")


def compare(left: Any, right: Any) -> int:
    a, b = sort_key(left), sort_key(right)
    return (a > b) - (a < b)


def equal(left: Any, right: Any) -> bool:
    return sort_key(left) == sort_key(right)


def canonical(value: Any) -> str:
    """A hashable text form of a datum (primary keys in the table dictionary)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_json(value: Any) -> str:
    """Compact JSON with sorted keys, as the server writes every object it builds."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def parse_float(text: str) -> float | int:
    return num(float(text))


def from_json(text: str | bytes) -> Any:
    return json.loads(text, parse_float=parse_float)


def _pretty_number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(value)


def pretty(value: Any, depth: int = 1) -> str:
    """RethinkDB's printed form of a datum in messages: objects one key a line with tabs
    (``{\\n\\t"id":\\t"demo"\\n}``), arrays inline."""
    if isinstance(value, dict):
        if not value:
            return "{\n" + "\t" * (depth - 1) + "}"
        lines = []
        for key in sorted(value):
            lines.append(
                "\t" * depth + json.dumps(key, ensure_ascii=False) + ":\t"
                + pretty(value[key], depth + 1)
            )
        return "{\n" + ",\n".join(lines) + "\n" + "\t" * (depth - 1) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(pretty(item, depth + 1) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if is_number(value):
        return _pretty_number(value)
    if isinstance(value, Bound):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def truthy(value: Any) -> bool:
    return not (value is None or value is False)


def merge(base: Any, patch: Any) -> Any:
    """``update``'s recursive object merge."""
    if isinstance(base, dict) and isinstance(patch, dict) and not ptype(patch):
        out = dict(base)
        for key, val in patch.items():
            out[key] = merge(base.get(key), val) if key in base else val
        return out
    return patch
