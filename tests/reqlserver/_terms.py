# -*- test-case-name: tests.test_reqlserver -*-
"""ReQL term checking and evaluation for the test server (the subset a store needs)."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.reqlserver import _datum as D
from tests.reqlserver._data import NAME_RE, SYSTEM_DB, Catalog, Database, Index, Table
from tests.reqlserver._errors import (
    CompileError,
    Path,
    ReqlError,
    RuntimeErr,
    logic,
    non_existence,
    op_failed,
)

# Term type ids (ql2.proto).
DATUM = 1
MAKE_ARRAY = 2
MAKE_OBJ = 3
VAR = 10
ERROR = 12
IMPLICIT_VAR = 13
DB = 14
TABLE = 15
GET = 16
EQ, NE, LT, LE, GT, GE = 17, 18, 19, 20, 21, 22
NOT = 23
ADD, SUB, MUL, DIV, MOD = 24, 25, 26, 27, 28
APPEND = 29
GET_FIELD = 31
HAS_FIELDS = 32
PLUCK = 33
WITHOUT = 34
MERGE = 35
MAP = 38
FILTER = 39
ORDER_BY = 41
DISTINCT = 42
COUNT = 43
NTH = 45
COERCE_TO = 51
TYPE_OF = 52
UPDATE, DELETE, REPLACE, INSERT = 53, 54, 55, 56
DB_CREATE, DB_DROP, DB_LIST = 57, 58, 59
TABLE_CREATE, TABLE_DROP, TABLE_LIST = 60, 61, 62
FUNCALL = 64
BRANCH = 65
OR = 66
AND = 67
FOR_EACH = 68
FUNC = 69
SKIP = 70
LIMIT = 71
ASC = 73
DESC = 74
INDEX_CREATE, INDEX_DROP, INDEX_LIST = 75, 76, 77
GET_ALL = 78
IS_EMPTY = 86
DEFAULT = 92
CONTAINS = 93
KEYS = 94
EPOCH_TIME = 101
TO_EPOCH_TIME = 102
NOW = 103
INDEX_STATUS = 139
INDEX_WAIT = 140
OBJECT = 143
SUM = 145
MIN = 147
MAX = 148
CHANGES = 152
UUID = 169
BRACKET = 170
WAIT = 177
MINVAL = 180
MAXVAL = 181
BETWEEN = 182

NAMES = {
    1: "DATUM", 2: "MAKE_ARRAY", 3: "MAKE_OBJ", 10: "VAR", 11: "JAVASCRIPT", 12: "ERROR",
    13: "IMPLICIT_VAR", 14: "DB", 15: "TABLE", 16: "GET", 17: "EQ", 18: "NE", 19: "LT",
    20: "LE", 21: "GT", 22: "GE", 23: "NOT", 24: "ADD", 25: "SUB", 26: "MUL", 27: "DIV",
    28: "MOD", 29: "APPEND", 30: "SLICE", 31: "GET_FIELD", 32: "HAS_FIELDS", 33: "PLUCK",
    34: "WITHOUT", 35: "MERGE", 37: "REDUCE", 38: "MAP", 39: "FILTER", 40: "CONCAT_MAP",
    41: "ORDER_BY", 42: "DISTINCT", 43: "COUNT", 44: "UNION", 45: "NTH", 48: "INNER_JOIN",
    49: "OUTER_JOIN", 50: "EQ_JOIN", 51: "COERCE_TO", 52: "TYPE_OF", 53: "UPDATE",
    54: "DELETE", 55: "REPLACE", 56: "INSERT", 57: "DB_CREATE", 58: "DB_DROP", 59: "DB_LIST",
    60: "TABLE_CREATE", 61: "TABLE_DROP", 62: "TABLE_LIST", 64: "FUNCALL", 65: "BRANCH",
    66: "OR", 67: "AND", 68: "FOR_EACH", 69: "FUNC", 70: "SKIP", 71: "LIMIT", 72: "ZIP",
    73: "ASC", 74: "DESC", 75: "INDEX_CREATE", 76: "INDEX_DROP", 77: "INDEX_LIST",
    78: "GET_ALL", 79: "INFO", 81: "SAMPLE", 86: "IS_EMPTY", 87: "OFFSETS_OF", 92: "DEFAULT",
    93: "CONTAINS", 94: "KEYS", 96: "WITH_FIELDS", 97: "MATCH", 98: "JSON", 101: "EPOCH_TIME",
    102: "TO_EPOCH_TIME", 103: "NOW", 136: "TIME", 137: "LITERAL", 138: "SYNC",
    139: "INDEX_STATUS", 140: "INDEX_WAIT", 143: "OBJECT", 144: "GROUP", 145: "SUM",
    146: "AVG", 147: "MIN", 148: "MAX", 150: "UNGROUP", 151: "RANDOM", 152: "CHANGES",
    153: "HTTP", 154: "ARGS", 155: "BINARY", 156: "INDEX_RENAME", 169: "UUID",
    170: "BRACKET", 173: "RANGE", 174: "CONFIG", 175: "STATUS", 176: "RECONFIGURE",
    177: "WAIT", 179: "REBALANCE", 180: "MINVAL", 181: "MAXVAL", 182: "BETWEEN",
    186: "VALUES", 187: "FOLD",
}

# Positional argument counts: (min, max or None for unbounded).
ARITY: dict[int, tuple[int, int | None]] = {
    MAKE_ARRAY: (0, None), MAKE_OBJ: (0, 0), VAR: (1, 1), ERROR: (0, 1), IMPLICIT_VAR: (0, 0),
    DB: (1, 1), TABLE: (1, 2), GET: (2, 2), GET_ALL: (1, None),
    EQ: (1, None), NE: (1, None), LT: (1, None), LE: (1, None), GT: (1, None), GE: (1, None),
    NOT: (1, 1), ADD: (1, None), SUB: (1, None), MUL: (1, None), DIV: (1, None),
    MOD: (2, 2), APPEND: (2, 2), GET_FIELD: (2, 2), HAS_FIELDS: (1, None), PLUCK: (1, None),
    WITHOUT: (1, None), MERGE: (1, None), MAP: (2, 2), FILTER: (2, 2), ORDER_BY: (1, None),
    DISTINCT: (1, 1), COUNT: (1, 2), NTH: (2, 2), COERCE_TO: (2, 2), TYPE_OF: (1, 1),
    UPDATE: (2, 2), DELETE: (1, 1), REPLACE: (2, 2), INSERT: (2, 2),
    DB_CREATE: (1, 1), DB_DROP: (1, 1), DB_LIST: (0, 0),
    TABLE_CREATE: (1, 2), TABLE_DROP: (1, 2), TABLE_LIST: (0, 1),
    FUNCALL: (1, None), BRANCH: (3, None), OR: (0, None), AND: (0, None), FOR_EACH: (2, 2),
    FUNC: (2, 2), SKIP: (2, 2), LIMIT: (2, 2), ASC: (1, 1), DESC: (1, 1),
    INDEX_CREATE: (2, 3), INDEX_DROP: (2, 2), INDEX_LIST: (1, 1), IS_EMPTY: (1, 1),
    DEFAULT: (2, 2), CONTAINS: (1, None), KEYS: (1, 1), EPOCH_TIME: (1, 1),
    TO_EPOCH_TIME: (1, 1), NOW: (0, 0), INDEX_STATUS: (1, None), INDEX_WAIT: (1, None),
    OBJECT: (0, None), SUM: (1, 2), MIN: (1, 2), MAX: (1, 2), CHANGES: (1, 1), UUID: (0, 1),
    BRACKET: (2, 2), WAIT: (0, 1), MINVAL: (0, 0), MAXVAL: (0, 0), BETWEEN: (3, 3),
}

# Optional arguments each implemented term accepts (others: none). Unknown ones are a
# compile error, as on the real server, so a misspelt optarg cannot pass silently.
_WRITE_OPTS = {"durability", "return_changes", "ignore_write_hook"}
OPTARGS: dict[int, set[str]] = {
    TABLE: {"read_mode", "identifier_format", "use_outdated"},
    GET_ALL: {"index"},
    BETWEEN: {"index", "left_bound", "right_bound"},
    ORDER_BY: {"index"},
    FILTER: {"default"},
    DISTINCT: {"index"},
    INSERT: _WRITE_OPTS | {"conflict"},
    UPDATE: _WRITE_OPTS | {"non_atomic"},
    REPLACE: _WRITE_OPTS | {"non_atomic"},
    DELETE: _WRITE_OPTS,
    TABLE_CREATE: {"primary_key", "shards", "replicas", "primary_replica_tag",
                   "nonvoting_replica_tags", "durability"},
    INDEX_CREATE: {"multi", "geo"},
    CHANGES: {"squash", "changefeed_queue_size", "include_initial", "include_states",
              "include_offsets", "include_types"},
    WAIT: {"wait_for", "timeout"},
    MIN: {"index"},
    MAX: {"index"},
    FOR_EACH: set(),
}
GLOBAL_OPTARGS = {
    "db", "noreply", "profile", "durability", "read_mode", "array_limit", "binary_format",
    "time_format", "group_format", "min_batch_rows", "max_batch_rows", "max_batch_bytes",
    "max_batch_seconds", "first_batch_scaledown_factor", "changefeed_queue_size",
}
# Terms that make a write function non-deterministic (they need non_atomic=True).
NON_DETERMINISTIC = {TABLE, 11, 151, 153, 81}  # TABLE, JAVASCRIPT, RANDOM, HTTP, SAMPLE

WRITE_COUNTERS = ("deleted", "errors", "inserted", "replaced", "skipped", "unchanged")


def term_name(ttype: int) -> str:
    return NAMES.get(ttype, str(ttype))


def _arity_message(lo: int, hi: int | None, found: int) -> str:
    if hi == lo:
        return f"Expected {lo} argument{'' if lo == 1 else 's'} but found {found}."
    if hi is None:
        return f"Expected {lo} or more argument{'' if lo == 1 else 's'} but found {found}."
    return f"Expected between {lo} and {hi} arguments but found {found}."


def _parts(term: list[Any], path: Path) -> tuple[int, list[Any], dict[str, Any]]:
    if not term or not isinstance(term[0], int) or isinstance(term[0], bool):
        raise CompileError("Expected a term type as the first element of a term.", path)
    args = term[1] if len(term) > 1 else []
    opts = term[2] if len(term) > 2 else {}
    if not isinstance(args, list) or not isinstance(opts, dict):
        raise CompileError("Expected a term of the form [type, [args], {optargs}].", path)
    return term[0], args, opts


def _contains_implicit(term: Any) -> bool:
    if isinstance(term, dict):
        return any(_contains_implicit(v) for v in term.values())
    if not isinstance(term, list) or not term:
        return False
    if term[0] == IMPLICIT_VAR:
        return True
    if term[0] == DATUM:
        return False
    args = term[1] if len(term) > 1 and isinstance(term[1], list) else []
    opts = term[2] if len(term) > 2 and isinstance(term[2], dict) else {}
    return any(_contains_implicit(a) for a in args) or any(
        _contains_implicit(v) for v in opts.values()
    )


def check(term: Any, path: Path = (), implicit_depth: int = 0) -> None:
    """The compile phase: term shapes, argument counts, ``r.row`` scope, unknown terms."""
    if isinstance(term, dict):
        for key, value in term.items():
            check(value, path + (key,), implicit_depth)
        return
    if not isinstance(term, list):
        return
    ttype, args, opts = _parts(term, path)
    if ttype == DATUM:
        return
    if ttype not in ARITY:
        raise CompileError(
            f"Term {term_name(ttype)} not implemented by the test server.", path
        )
    lo, hi = ARITY[ttype]
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise CompileError(_arity_message(lo, hi, len(args)), path)
    if ttype != MAKE_OBJ:
        allowed = OPTARGS.get(ttype, set())
        for name in opts:
            if name not in allowed:
                raise CompileError(f"Unrecognized optional argument `{name}`.", path + (name,))
    if ttype == IMPLICIT_VAR:
        if implicit_depth == 0:
            raise CompileError("r.row is not defined in this context.", path)
        if implicit_depth > 1:
            raise CompileError("Cannot use r.row in nested queries.  Use functions instead.", path)
        return
    if ttype == FUNC:
        params = _func_params(args[0], path + (0,))
        depth = implicit_depth
        if len(params) == 1 and _contains_implicit(args[1]):
            depth += 1
        check(args[1], path + (1,), depth)
        return
    for i, arg in enumerate(args):
        check(arg, path + (i,), implicit_depth)
    for key, value in opts.items():
        check(value, path + (key,), implicit_depth)


def check_global_optargs(optargs: dict[str, Any]) -> None:
    for name, value in optargs.items():
        if name not in GLOBAL_OPTARGS:
            raise CompileError(f"Unrecognized global optional argument `{name}`.", ())
        check(value, ())


def deterministic(term: Any) -> bool:
    """Whether a write function may run atomically (no table reads, r.js, r.uuid(), ...)."""
    if isinstance(term, dict):
        return all(deterministic(v) for v in term.values())
    if not isinstance(term, list) or not term or term[0] == DATUM:
        return True
    args = term[1] if len(term) > 1 and isinstance(term[1], list) else []
    opts = term[2] if len(term) > 2 and isinstance(term[2], dict) else {}
    if term[0] in NON_DETERMINISTIC or (term[0] == UUID and not args):
        return False
    return all(deterministic(a) for a in args) and all(deterministic(v) for v in opts.values())


def _func_params(spec: Any, path: Path) -> list[int]:
    if isinstance(spec, list) and len(spec) >= 2 and spec[0] == MAKE_ARRAY:
        spec = spec[1]
    elif isinstance(spec, list) and len(spec) >= 2 and spec[0] == DATUM:
        spec = spec[1]
    if not isinstance(spec, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in spec
    ):
        raise CompileError("Expected a list of variable ids as function arguments.", path)
    return list(spec)


# Values that are not datums.


@dataclass
class DbVal:
    db: Database


@dataclass
class TableVal:
    table: Table


@dataclass
class RowVal:
    """A single selection: ``table.get(key)``."""

    table: Table
    key: Any
    doc: dict[str, Any] | None


@dataclass
class Step:
    kind: str  # "between", "filter", "order_by", "limit", "get_all"
    index: str = ""
    args: tuple[Any, ...] = ()
    pred: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class Seq:
    """A stream (or, with ``is_array``, an array result) of documents or values.

    ``table`` and ``recipe`` are set while the stream is still a selection of one table,
    so writes and changefeeds can use it."""

    items: list[Any]
    table: Table | None = None
    recipe: list[Step] | None = None
    is_array: bool = False
    order_index: str | None = None


@dataclass
class FuncVal:
    params: list[int]
    body: Any
    path: Path
    scope: Scope


@dataclass
class Order:
    desc: bool
    key: Any  # a field name or a FuncVal


@dataclass
class FeedVal:
    kind: str  # "table", "point", "limit"
    table: Table
    recipe: list[Step]
    key: Any = None
    include_initial: bool = False
    include_states: bool = False
    include_types: bool = False
    squash: bool = False


@dataclass
class WaitVal:
    """``wait()``: answered once the tables are available again."""

    result: dict[str, Any]
    tables: list[Table]


@dataclass
class Scope:
    vars: dict[int, Any] = field(default_factory=dict)
    implicit: Any = None
    has_implicit: bool = False


class Server:
    """What the evaluator needs from the running server (see _server.ReqlService)."""

    catalog: Catalog

    def available(self, table: Table) -> bool:
        return True

    def seconds(self) -> float:
        return time.time()


def _check_name(kind: str, name: Any, path: Path) -> str:
    if not isinstance(name, str):
        raise logic(f"Expected type STRING but found {D.type_name(name)}.", path)
    if not NAME_RE.match(name):
        raise logic(f"{kind} name `{name}` invalid (Use A-Z, a-z, 0-9, _ and - only).", path)
    return name


def _expect_type(value: Any, expected: str, path: Path) -> None:
    raise logic(f"Expected type {expected} but found {value_type(value)}.", path)


def value_type(value: Any) -> str:
    if isinstance(value, DbVal):
        return "DATABASE"
    if isinstance(value, TableVal):
        return "TABLE"
    if isinstance(value, RowVal):
        return "SINGLE_SELECTION"
    if isinstance(value, Seq):
        if value.is_array:
            return "ARRAY"
        return "TABLE_SLICE" if value.table is not None else "SEQUENCE"
    if isinstance(value, FuncVal):
        return "FUNCTION"
    if isinstance(value, FeedVal):
        return "SEQUENCE"
    if isinstance(value, Order):
        return "ORDERING"
    return D.type_name(value)


def empty_write_result() -> dict[str, Any]:
    return {name: 0 for name in WRITE_COUNTERS}


def merge_write_results(acc: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(acc)
    for key, value in more.items():
        if key in out and D.is_number(value) and D.is_number(out[key]):
            out[key] = D.num(out[key] + value)
        elif key in out and isinstance(value, list) and isinstance(out[key], list):
            out[key] = out[key] + value
        elif key not in out:
            out[key] = value
    return out


class Evaluator:
    """Evaluates one query's term against the catalog."""

    def __init__(self, server: Server, global_optargs: dict[str, Any], root: Any = None) -> None:
        self.server = server
        self.catalog = server.catalog
        self.global_optargs = global_optargs
        self.root = root
        self.dirty = False  # something in the catalog changed (persist it)
        self._default_db: Database | None = None

    # Plumbing.

    def ev(self, term: Any, scope: Scope, path: Path) -> Any:
        if isinstance(term, dict):
            return {key: self.datum(self.ev(value, scope, path + (key,)), path + (key,))
                    for key, value in term.items()}
        if not isinstance(term, list):
            return term
        ttype, args, opts = _parts(term, path)
        if ttype == DATUM:
            return args
        handler = _HANDLERS.get(ttype)
        if handler is None:
            raise CompileError(f"Term {term_name(ttype)} not implemented by the test server.", path)
        return handler(self, args, opts, scope, path)

    def arg(self, args: list[Any], i: int, scope: Scope, path: Path) -> Any:
        return self.ev(args[i], scope, path + (i,))

    def darg(self, args: list[Any], i: int, scope: Scope, path: Path) -> Any:
        return self.datum(self.ev(args[i], scope, path + (i,)), path + (i,))

    def opt(self, opts: dict[str, Any], name: str, scope: Scope, path: Path,
            default: Any = None) -> Any:
        if name not in opts:
            return default
        return self.datum(self.ev(opts[name], scope, path + (name,)), path + (name,))

    def datum(self, value: Any, path: Path) -> Any:
        """A value as a datum: single selections become documents, streams arrays."""
        if isinstance(value, RowVal):
            return value.doc
        if isinstance(value, Seq):
            return value.items
        if isinstance(value, TableVal):
            return value.table.scan()
        if isinstance(value, (DbVal, FuncVal, FeedVal, Order)):
            raise logic(f"Expected type DATUM but found {value_type(value)}:\n{self._show(value)}", path)
        return value

    def _show(self, value: Any) -> str:
        if isinstance(value, DbVal):
            return f'db("{value.db.name}")'
        if isinstance(value, FuncVal):
            return "<function>"
        return repr(value)

    def items(self, value: Any, path: Path) -> list[Any]:
        if isinstance(value, TableVal):
            return value.table.scan()
        if isinstance(value, Seq):
            return value.items
        if isinstance(value, list):
            return value
        raise logic(f"Expected type SEQUENCE but found {value_type(value)}.", path)

    def call(self, fn: Any, args: list[Any], path: Path) -> Any:
        if not isinstance(fn, FuncVal):
            return fn
        if len(fn.params) != len(args):
            raise logic(
                f"Expected function with {len(args)} argument{'' if len(args) == 1 else 's'}"
                f" but found function with {len(fn.params)} argument"
                f"{'' if len(fn.params) == 1 else 's'}.",
                fn.path,
            )
        scope = Scope(dict(fn.scope.vars), fn.scope.implicit, fn.scope.has_implicit)
        for param, value in zip(fn.params, args):
            scope.vars[param] = value
        if len(args) == 1:
            scope.implicit = args[0]
            scope.has_implicit = True
        return self.ev(fn.body, scope, fn.path + (1,))

    def call_datum(self, fn: Any, args: list[Any], path: Path) -> Any:
        return self.datum(self.call(fn, args, path), path)

    def default_db(self, path: Path) -> Database:
        if self._default_db is None:
            spec = self.global_optargs.get("db")
            if spec is None:
                name = "test"
                db = self.catalog.dbs.get(name)
                if db is None:
                    raise op_failed("Database `test` does not exist.", path)
                self._default_db = db
            else:
                value = self.ev(spec, Scope(), ())
                if isinstance(value, str):
                    value = self._db(value, ())
                if not isinstance(value, DbVal):
                    raise logic(f"Expected type DATABASE but found {value_type(value)}.", ())
                self._default_db = value.db
        return self._default_db

    def _db(self, name: Any, path: Path) -> DbVal:
        name = _check_name("Database", name, path)
        if name == SYSTEM_DB:
            raise op_failed(
                "The `rethinkdb` system database is not implemented by the test server.", path
            )
        db = self.catalog.dbs.get(name)
        if db is None:
            raise op_failed(f"Database `{name}` does not exist.", path)
        return DbVal(db)

    def table_of(self, value: Any, path: Path) -> Table:
        if isinstance(value, TableVal):
            return value.table
        raise logic(f"Expected type TABLE but found {value_type(value)}.", path)

    def index_of(self, table: Table, name: Any, path: Path) -> Index | None:
        """None for the primary key."""
        if not isinstance(name, str):
            raise logic(f"Expected type STRING but found {D.type_name(name)}.", path)
        if name == table.primary_key:
            return None
        index = table.indexes.get(name)
        if index is None:
            raise op_failed(f"Index `{name}` was not found on table `{table.qualified}`.", path)
        return index

    def keyed(self, table: Table, index: Index | None) -> list[tuple[Any, dict[str, Any]]]:
        """(index key, document) pairs in index order, ties by primary key."""
        pk = table.primary_key
        pairs: list[tuple[Any, dict[str, Any]]] = []
        for doc in table.scan():
            if index is None:
                pairs.append((doc[pk], doc))
            else:
                for key in table.index_keys(index, doc):
                    pairs.append((key, doc))
        pairs.sort(key=lambda kd: (D.sort_key(kd[0]), D.sort_key(kd[1][pk])))
        return pairs

    # Recipes: how a table selection was built, so a changefeed can recompute it.

    def apply_recipe(self, table: Table, recipe: list[Step]) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] | None = None
        for step in recipe:
            if step.kind == "between":
                lo, hi, left_open, right_closed = step.args
                index = table.indexes.get(step.index) if step.index != table.primary_key else None
                out = []
                for key, doc in self.keyed(table, index):
                    if _in_range(key, lo, hi, left_open, right_closed):
                        out.append(doc)
                docs = out
            elif step.kind == "get_all":
                keys = step.args
                index = table.indexes.get(step.index) if step.index != table.primary_key else None
                out = []
                for wanted in keys:
                    if index is None:
                        found = table.get(wanted)
                        if found is not None:
                            out.append(found)
                    else:
                        for key, doc in self.keyed(table, index):
                            if D.equal(key, wanted):
                                out.append(doc)
                docs = out
            elif step.kind == "filter":
                assert step.pred is not None
                docs = [d for d in (table.scan() if docs is None else docs) if step.pred(d)]
            elif step.kind == "order_by":
                index = table.indexes.get(step.index) if step.index != table.primary_key else None
                desc = bool(step.args[0])
                source = table.scan() if docs is None else docs
                if index is None:
                    ordered = sorted(source, key=lambda d: D.sort_key(d[table.primary_key]))
                else:
                    wanted = {D.canonical(d[table.primary_key]) for d in source}
                    ordered = [
                        doc for _key, doc in self.keyed(table, index)
                        if D.canonical(doc[table.primary_key]) in wanted
                    ]
                docs = list(reversed(ordered)) if desc else ordered
            elif step.kind == "limit":
                docs = (table.scan() if docs is None else docs)[: step.args[0]]
        return table.scan() if docs is None else docs

    def passes(self, table: Table, recipe: list[Step], doc: dict[str, Any] | None) -> bool:
        """Whether one document belongs to a row-wise selection (for table feeds)."""
        if doc is None:
            return False
        for step in recipe:
            if step.kind == "between":
                lo, hi, left_open, right_closed = step.args
                if step.index == table.primary_key:
                    keys = [doc[table.primary_key]]
                else:
                    index = table.indexes.get(step.index)
                    keys = table.index_keys(index, doc) if index else []
                if not any(_in_range(k, lo, hi, left_open, right_closed) for k in keys):
                    return False
            elif step.kind == "get_all":
                if step.index == table.primary_key:
                    keys = [doc[table.primary_key]]
                else:
                    index = table.indexes.get(step.index)
                    keys = table.index_keys(index, doc) if index else []
                if not any(D.equal(k, w) for k in keys for w in step.args):
                    return False
            elif step.kind == "filter":
                assert step.pred is not None
                if not step.pred(doc):
                    return False
        return True

    def seq_of_table(self, value: Any, path: Path) -> tuple[Table, list[Step]]:
        if isinstance(value, TableVal):
            return value.table, []
        if isinstance(value, Seq) and value.table is not None and value.recipe is not None:
            return value.table, value.recipe
        raise logic(f"Expected type TABLE_SLICE but found {value_type(value)}.", path)

    # Index functions.

    def make_index(self, table: Table, name: str, function: Any, multi: bool, geo: bool,
                   query: str | None = None, blob: str | None = None) -> Index:
        fn = self.ev(function, Scope(), ())
        path: Path = ()

        def keys_of(doc: dict[str, Any]) -> list[Any]:
            try:
                value = self.call_datum(fn, [doc], path)
            except ReqlError:
                return []
            if value is None:
                return []
            if multi and isinstance(value, list):
                out: list[Any] = []
                for item in value:
                    if not any(D.equal(item, seen) for seen in out):
                        out.append(item)
                return out
            return [value]

        params = fn.params if isinstance(fn, FuncVal) else [1]
        if query is None:
            query = f"indexCreate('{name}', function(var{params[0]}) {{ return {js_body(function)}; }})"
        if blob is None:
            blob = index_blob(function, params, 9)
        return Index(name, function, multi, geo, keys_of, query, blob)

    def index_status(self, table: Table, index: Index) -> dict[str, Any]:
        return {
            "function": {"$reql_type$": "BINARY", "data": index.blob},
            "geo": index.geo,
            "index": index.name,
            "multi": index.multi,
            "outdated": False,
            "query": index.query,
            "ready": True,
        }

    # Writes.

    def write_targets(self, value: Any, path: Path) -> tuple[Table, list[tuple[Any, dict[str, Any] | None]]]:
        """(table, [(primary key, current document or None)]) of a selection."""
        if isinstance(value, RowVal):
            return value.table, [(value.key, value.table.get(value.key))]
        if isinstance(value, TableVal):
            table = value.table
            return table, [(d[table.primary_key], d) for d in table.scan()]
        if isinstance(value, Seq) and value.table is not None:
            table = value.table
            out = []
            for d in value.items:
                if isinstance(d, dict) and table.primary_key in d:
                    key = d[table.primary_key]
                    out.append((key, table.get(key)))
            return table, out
        raise logic(f"Expected type SELECTION but found {value_type(value)}.", path)

    def _note_error(self, result: dict[str, Any], message: str) -> None:
        result["errors"] += 1
        result.setdefault("first_error", message)

    def _record(self, table: Table, result: dict[str, Any], changes: list[dict[str, Any]] | None,
                old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        table.write(old, new)
        self.dirty = True
        if changes is not None:
            changes.append({"new_val": new, "old_val": old})

    def _finish(self, result: dict[str, Any], changes: list[dict[str, Any]] | None) -> dict[str, Any]:
        if changes is not None:
            result["changes"] = changes
        return result

    def modify(self, table: Table, targets: list[tuple[Any, dict[str, Any] | None]],
               fn: Callable[[dict[str, Any] | None], Any], mode: str, return_changes: bool,
               path: Path) -> dict[str, Any]:
        """update / replace / delete of each target document."""
        result = empty_write_result()
        changes: list[dict[str, Any]] | None = [] if return_changes else None
        pk = table.primary_key
        for key, _ in targets:
            old = table.get(key)
            if old is None and mode != "replace":
                result["skipped"] += 1
                continue
            try:
                if mode == "delete":
                    new = None
                else:
                    patch = fn(old)
                    if mode == "update":
                        if patch is None:
                            result["unchanged"] += 1
                            continue
                        if not isinstance(patch, dict):
                            raise logic(f"Expected type OBJECT but found {D.type_name(patch)}.", path)
                        new = D.merge(old, patch)
                    else:
                        new = patch
                        if new is not None and not isinstance(new, dict):
                            raise logic(f"Expected type OBJECT but found {D.type_name(new)}.", path)
                        if new is not None and pk not in new:
                            raise logic(
                                f"Inserted object must have primary key `{pk}`:\n{D.pretty(new)}",
                                path,
                            )
                if new is not None and old is not None and not D.equal(new[pk], old[pk]):
                    raise logic(
                        f"Primary key `{pk}` cannot be changed (`{D.pretty(old)}` -> "
                        f"`{D.pretty(new)}`).",
                        path,
                    )
                if new is not None and old is None and not D.equal(new[pk], key):
                    raise logic(
                        f"Primary key `{pk}` cannot be changed (`null` -> `{D.pretty(new)}`).",
                        path,
                    )
            except ReqlError as e:
                if isinstance(e, CompileError):
                    raise
                self._note_error(result, e.message)
                continue
            if old is None and new is None:
                result["skipped"] += 1
                continue
            if old is not None and new is not None and D.equal(old, new):
                result["unchanged"] += 1
                continue
            if new is None:
                result["deleted"] += 1
            elif old is None:
                result["inserted"] += 1
            else:
                result["replaced"] += 1
            self._record(table, result, changes, old, new)
        return self._finish(result, changes)

    def insert(self, table: Table, docs: list[Any], conflict: Any, return_changes: bool,
               path: Path) -> dict[str, Any]:
        result = empty_write_result()
        changes: list[dict[str, Any]] | None = [] if return_changes else None
        generated: list[str] = []
        pk = table.primary_key
        for doc in docs:
            if not isinstance(doc, dict):
                self._note_error(result, f"Expected type OBJECT but found {D.type_name(doc)}.")
                continue
            if pk not in doc:
                key = self.catalog.entropy.uuid("key")
                generated.append(key)
                doc = {**doc, pk: key}
            key = doc[pk]
            if key is None or isinstance(key, dict) and not D.ptype(key):
                self._note_error(
                    result,
                    "Primary keys must be either a number, string, bool, pseudotype or array "
                    f"(got type {D.type_name(key)}):\n{D.pretty(key)}",
                )
                continue
            old = table.get(key)
            new: dict[str, Any] | None = doc
            if old is not None:
                if conflict == "error":
                    self._note_error(
                        result,
                        f"Duplicate primary key `{pk}`:\n{D.pretty(old)}\n{D.pretty(doc)}",
                    )
                    continue
                if conflict == "update":
                    new = D.merge(old, doc)
                elif isinstance(conflict, FuncVal):
                    try:
                        new = self.call_datum(conflict, [key, old, doc], path)
                    except ReqlError as e:
                        self._note_error(result, e.message)
                        continue
                if new is None:
                    result["deleted"] += 1
                    self._record(table, result, changes, old, None)
                    continue
                if D.equal(old, new):
                    result["unchanged"] += 1
                    continue
                result["replaced"] += 1
            else:
                result["inserted"] += 1
            self._record(table, result, changes, old, new)
        if generated:
            result["generated_keys"] = generated
        return self._finish(result, changes)


def _in_range(key: Any, lo: Any, hi: Any, left_open: bool, right_closed: bool) -> bool:
    c_lo = D.compare(key, lo)
    c_hi = D.compare(key, hi)
    if c_lo < 0 or (c_lo == 0 and left_open):
        return False
    if c_hi > 0 or (c_hi == 0 and not right_closed):
        return False
    return True


# Printing index functions the way the real server reports them in index_status.


def js_body(function: Any) -> str:
    body = function[1][1] if isinstance(function, list) and function[0] == FUNC else function
    return _js(body, top=True)


def _js(term: Any, top: bool = False) -> str:
    if isinstance(term, dict):
        inner = ", ".join(f"{json.dumps(k)}: {_js(v)}" for k, v in term.items())
        return "{" + inner + "}"
    if not isinstance(term, list):
        return json.dumps(term, ensure_ascii=False)
    ttype = term[0]
    args = term[1] if len(term) > 1 else []
    if ttype == MAKE_ARRAY:
        inner = "[" + ", ".join(_js(a) for a in args) + "]"
        return f"r.expr({inner})" if top else inner
    if ttype == IMPLICIT_VAR:
        return "r.row"
    if ttype == VAR:
        return f"var{args[0]}"
    if ttype in (BRACKET, GET_FIELD):
        return f"{_js(args[0], True)}({_js(args[1])})"
    if ttype == DATUM:
        return json.dumps(args, ensure_ascii=False)
    name = "".join(
        part.capitalize() if i else part.lower()
        for i, part in enumerate(term_name(ttype).split("_"))
    )
    if args:
        rest = ", ".join(_js(a) for a in args[1:])
        return f"{_js(args[0], True)}.{name}({rest})"
    return f"r.{name}()"


def _bt_json(term: Any, counter: list[int]) -> Any:
    """The server's internal form of a term: every node carries a backtrace id."""
    bt = counter[0]
    counter[0] += 1
    if isinstance(term, dict):
        return [MAKE_OBJ, [], bt, {k: _bt_json(v, counter) for k, v in term.items()}]
    if not isinstance(term, list):
        return [DATUM, term, bt]
    ttype = term[0]
    args = term[1] if len(term) > 1 else []
    opts = term[2] if len(term) > 2 else {}
    out: list[Any] = [ttype, [_bt_json(a, counter) for a in args], bt]
    if opts:
        out.append({k: _bt_json(v, counter) for k, v in opts.items()})
    return out


def index_blob(function: Any, params: list[int], first_bt: int) -> str:
    """The ``function`` binary of index_status, base64 with CRLF every 76 characters."""
    body = function[1][1] if isinstance(function, list) and function[0] == FUNC else function
    text = json.dumps(_bt_json(body, [first_bt]), separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    raw = (
        b"$reql_index_function$\t\x07\x07\x07" + b"\x00" * 6 + bytes([len(params)])
        + b"".join(struct.pack("<q", p) for p in params)
        + struct.pack("<I", len(text) + 1) + text + b"\x00"
        + bytes([first_bt & 0xFF]) + b"\x00" * 5
    )
    data = base64.b64encode(raw).decode("ascii")
    return "\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))


def preorder_id(root: Any, target: Path) -> int:
    """The backtrace id the real server gives the node at ``target`` (preorder from 0)."""
    counter = 0

    def walk(term: Any, path: Path) -> int | None:
        nonlocal counter
        if path == target:
            return counter
        counter += 1
        if isinstance(term, dict):
            for k, v in term.items():
                found = walk(v, path + (k,))
                if found is not None:
                    return found
            return None
        if not isinstance(term, list) or not term or term[0] == DATUM:
            return None
        args = term[1] if len(term) > 1 else []
        opts = term[2] if len(term) > 2 else {}
        for i, a in enumerate(args):
            found = walk(a, path + (i,))
            if found is not None:
                return found
        for k, v in opts.items():
            found = walk(v, path + (k,))
            if found is not None:
                return found
        return None

    found = walk(root, ())
    return 9 if found is None else found


# Term handlers.

Handler = Callable[[Evaluator, list[Any], dict[str, Any], Scope, Path], Any]
_HANDLERS: dict[int, Handler] = {}


def handles(*types: int) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            _HANDLERS[t] = fn
        return fn

    return register


@handles(MAKE_ARRAY)
def _make_array(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return [ev.darg(args, i, scope, path) for i in range(len(args))]


@handles(MAKE_OBJ)
def _make_obj(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return {k: ev.opt(opts, k, scope, path) for k in opts}


@handles(OBJECT)
def _object(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    values = [ev.darg(args, i, scope, path) for i in range(len(args))]
    if len(values) % 2:
        raise logic("OBJECT expects an even number of arguments (but found an odd number).", path)
    out = {}
    for k, v in zip(values[::2], values[1::2]):
        if not isinstance(k, str):
            raise logic(f"Expected type STRING but found {D.type_name(k)}.", path)
        out[k] = v
    return out


@handles(VAR)
def _var(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    var_id = ev.darg(args, 0, scope, path)
    if var_id not in scope.vars:
        raise CompileError("Variable name not found.", path)
    return scope.vars[var_id]


@handles(IMPLICIT_VAR)
def _implicit(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    if not scope.has_implicit:
        raise CompileError("r.row is not defined in this context.", path)
    return scope.implicit


@handles(FUNC)
def _func(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return FuncVal(_func_params(args[0], path + (0,)), args[1], path, scope)


@handles(FUNCALL)
def _funcall(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    fn = ev.arg(args, 0, scope, path)
    values = [ev.darg(args, i, scope, path) for i in range(1, len(args))]
    if not isinstance(fn, FuncVal):
        raise logic(f"Expected type FUNCTION but found {value_type(fn)}.", path + (0,))
    return ev.call(fn, values, path)


@handles(MINVAL)
def _minval(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return D.MINVAL


@handles(MAXVAL)
def _maxval(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return D.MAXVAL


@handles(ASC, DESC)
def _asc_desc(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    # Only meaningful inside ORDER_BY, which reads the term itself; keep the value.
    key = ev.arg(args, 0, scope, path)
    return Order(False, key)


@handles(DB)
def _db(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return ev._db(ev.darg(args, 0, scope, path), path)


@handles(TABLE)
def _table(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    if len(args) == 2:
        db_val = ev.arg(args, 0, scope, path)
        if not isinstance(db_val, DbVal):
            raise logic(f"Expected type DATABASE but found {value_type(db_val)}.", path + (0,))
        db = db_val.db
        name = ev.darg(args, 1, scope, path)
    else:
        name = ev.darg(args, 0, scope, path)
        db = ev.default_db(path)
    name = _check_name("Table", name, path)
    table = db.tables.get(name)
    if table is None:
        raise op_failed(f"Table `{db.name}.{name}` does not exist.", path)
    return TableVal(table)


@handles(GET)
def _get(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    key = ev.darg(args, 1, scope, path)
    if key is None:
        raise non_existence("Primary keys must be either a number, string, bool, pseudotype or array (got type NULL):\nnull", path)
    return RowVal(table, key, table.get(key))


@handles(GET_ALL)
def _get_all(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    keys = tuple(ev.darg(args, i, scope, path) for i in range(1, len(args)))
    index_name = ev.opt(opts, "index", scope, path, table.primary_key)
    ev.index_of(table, index_name, path)
    recipe = [Step("get_all", index_name, keys)]
    return Seq(ev.apply_recipe(table, recipe), table, recipe)


@handles(BETWEEN)
def _between(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    lo = ev.darg(args, 1, scope, path)
    hi = ev.darg(args, 2, scope, path)
    index_name = ev.opt(opts, "index", scope, path, None)
    left = ev.opt(opts, "left_bound", scope, path, "closed")
    right = ev.opt(opts, "right_bound", scope, path, "open")
    for bound, name in ((left, "left_bound"), (right, "right_bound")):
        if bound not in ("open", "closed"):
            raise logic(f"Expected `open` or `closed` for optarg `{name}` (got `{D.pretty(bound)}`).",
                        path + (name,))
    table, recipe = ev.seq_of_table(source, path + (0,))
    if index_name is None:
        index_name = table.primary_key
    ev.index_of(table, index_name, path)
    if recipe:
        raise logic("Cannot perform multiple BETWEENs on the same table.", path)
    step = Step("between", index_name, (lo, hi, left == "open", right == "closed"))
    recipe = [step]
    return Seq(ev.apply_recipe(table, recipe), table, recipe, order_index=None)


def _order_spec(ev: Evaluator, term: Any, scope: Scope, path: Path) -> Order:
    if isinstance(term, list) and term and term[0] in (ASC, DESC):
        key = ev.ev(term[1][0], scope, path + (0,))
        return Order(term[0] == DESC, key)
    return Order(False, ev.ev(term, scope, path))


@handles(ORDER_BY)
def _order_by(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    index_order = _order_spec(ev, opts["index"], scope, path + ("index",)) if "index" in opts else None
    fields = [_order_spec(ev, args[i], scope, path + (i,)) for i in range(1, len(args))]
    if index_order is not None:
        index_name = index_order.key
        if not isinstance(source, (TableVal, Seq)) or (
            isinstance(source, Seq) and (source.table is None or source.recipe is None)
        ):
            raise logic("Indexed order_by can only be performed on a TABLE or TABLE_SLICE.", path)
        table, recipe = ev.seq_of_table(source, path + (0,))
        ev.index_of(table, index_name, path)
        for step in recipe:
            if step.kind == "between" and step.index != index_name:
                raise logic(
                    f"Cannot order by index `{index_name}` after calling BETWEEN on index "
                    f"`{step.index}`.",
                    path,
                )
            if step.kind not in ("between",):
                raise logic("Indexed order_by can only be performed on a TABLE or TABLE_SLICE.", path)
        recipe = recipe + [Step("order_by", index_name, (index_order.desc,))]
        items = ev.apply_recipe(table, recipe)
        if fields:
            items = _sort_by_fields(ev, items, fields, path)
            return Seq(items, table, None, is_array=False)
        return Seq(items, table, recipe, order_index=index_name)
    if not fields:
        raise logic("ORDER_BY requires at least one argument.", path)
    items = ev.items(source, path + (0,))
    owner: Table | None = None
    if isinstance(source, (Seq, TableVal)):
        owner = source.table
    return Seq(_sort_by_fields(ev, list(items), fields, path), owner, None, is_array=True)


def _sort_by_fields(ev: Evaluator, items: list[Any], fields: list[Order], path: Path) -> list[Any]:
    def key_for(item: Any, order: Order) -> Any:
        if isinstance(order.key, FuncVal):
            try:
                return ev.call_datum(order.key, [item], path)
            except RuntimeErr:
                return None
        if isinstance(item, dict):
            return item.get(order.key)
        return None

    out = list(items)
    for order in reversed(fields):
        def sort_key(item: Any, order: Order = order) -> tuple[Any, ...]:
            return D.sort_key(key_for(item, order))

        out.sort(key=sort_key, reverse=order.desc)
    return out


@handles(LIMIT)
def _limit(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    n = ev.darg(args, 1, scope, path)
    if not isinstance(n, int) or isinstance(n, bool):
        raise logic(f"Expected type NUMBER but found {D.type_name(n)}.", path + (1,))
    if n < 0:
        raise logic(f"LIMIT takes a non-negative argument (got {n})", path + (1,))
    if isinstance(source, list):
        return source[:n]
    if isinstance(source, TableVal):
        recipe = [Step("limit", "", (n,))]
        return Seq(source.table.scan()[:n], source.table, recipe)
    if isinstance(source, Seq):
        limited: list[Step] | None = None
        if source.recipe is not None:
            limited = source.recipe + [Step("limit", "", (n,))]
        return Seq(source.items[:n], source.table, limited, source.is_array, source.order_index)
    raise logic(f"Expected type SEQUENCE but found {value_type(source)}.", path + (0,))


@handles(SKIP)
def _skip(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    n = ev.darg(args, 1, scope, path)
    if not isinstance(n, int) or isinstance(n, bool):
        raise logic(f"Expected type NUMBER but found {D.type_name(n)}.", path + (1,))
    if isinstance(source, list):
        return source[n:]
    items = ev.items(source, path + (0,))
    table = source.table if isinstance(source, (TableVal, Seq)) else None
    return Seq(items[n:], table, None, isinstance(source, Seq) and source.is_array)


def _predicate(ev: Evaluator, pred: Any, default: Any, path: Path) -> Callable[[Any], bool]:
    def matches(doc: Any, pattern: Any) -> bool:
        if isinstance(pattern, dict) and not D.ptype(pattern):
            if not isinstance(doc, dict):
                return False
            return all(k in doc and matches(doc[k], v) for k, v in pattern.items())
        return D.equal(doc, pattern)

    def test(doc: Any) -> bool:
        if isinstance(pred, FuncVal):
            try:
                return D.truthy(ev.call_datum(pred, [doc], path))
            except RuntimeErr as e:
                if e.code == non_existence("", ()).code and not isinstance(default, _Raise):
                    return D.truthy(default)
                raise
        return matches(doc, pred)

    return test


class _Raise:
    pass


@handles(FILTER)
def _filter(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    pred = ev.arg(args, 1, scope, path)
    if isinstance(pred, (RowVal, Seq, TableVal)):
        pred = ev.datum(pred, path + (1,))
    default: Any = False
    if "default" in opts:
        raw = opts["default"]
        if isinstance(raw, list) and raw and raw[0] == ERROR:
            default = _Raise()
        else:
            default = ev.opt(opts, "default", scope, path)
    test = _predicate(ev, pred, default, path + (1,))
    if isinstance(source, list):
        return [d for d in source if test(d)]
    if isinstance(source, RowVal):
        return source.doc if source.doc is not None and test(source.doc) else None
    if isinstance(source, TableVal):
        recipe = [Step("filter", pred=test)]
        return Seq([d for d in source.table.scan() if test(d)], source.table, recipe)
    if isinstance(source, Seq):
        items = [d for d in source.items if test(d)]
        filtered: list[Step] | None = None
        if source.recipe is not None:
            filtered = source.recipe + [Step("filter", pred=test)]
        return Seq(items, source.table, filtered, source.is_array, source.order_index)
    raise logic(f"Expected type SEQUENCE but found {value_type(source)}.", path + (0,))


@handles(MAP)
def _map(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    fn = ev.arg(args, 1, scope, path)
    items = ev.items(source, path + (0,))
    out = [ev.call_datum(fn, [item], path + (1,)) for item in items]
    if isinstance(source, list) or (isinstance(source, Seq) and source.is_array):
        return out
    return Seq(out)


@handles(COUNT)
def _count(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    if isinstance(source, (str,)) and len(args) == 1:
        return len(source)
    if isinstance(source, dict) and len(args) == 1:
        return len(source)
    items = ev.items(source, path + (0,))
    if len(args) == 1:
        return len(items)
    pred = ev.arg(args, 1, scope, path)
    if isinstance(pred, FuncVal):
        return sum(1 for i in items if D.truthy(ev.call_datum(pred, [i], path + (1,))))
    pred = ev.datum(pred, path + (1,))
    return sum(1 for i in items if D.equal(i, pred))


@handles(IS_EMPTY)
def _is_empty(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return not ev.items(ev.arg(args, 0, scope, path), path + (0,))


def _aggregate(kind: int) -> Handler:
    def run(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
        items = list(ev.items(ev.arg(args, 0, scope, path), path + (0,)))
        getter: Any = None
        if len(args) > 1:
            getter = ev.arg(args, 1, scope, path)
        if "index" in opts:
            raise logic("The test server does not implement min/max with an index.", path)

        def value_of(item: Any) -> Any:
            if getter is None:
                return item
            if isinstance(getter, FuncVal):
                return ev.call_datum(getter, [item], path + (1,))
            if isinstance(item, dict) and getter in item:
                return item[getter]
            raise non_existence(f"No attribute `{getter}` in object:\n{D.pretty(item)}", path)

        if kind == SUM:
            total: float | int = 0
            for item in items:
                v = value_of(item)
                if not D.is_number(v):
                    raise logic(f"Expected type NUMBER but found {D.type_name(v)}.", path)
                total += v
            return D.num(total)
        if not items:
            raise non_existence(
                f"Cannot take the {'minimum' if kind == MIN else 'maximum'} of an empty stream."
                "  (If you passed `min` or `max` a field name, it may be that no elements of "
                "the stream had that field.)",
                path,
            )
        keyed = [(value_of(i), i) for i in items]
        pick = min if kind == MIN else max
        return pick(keyed, key=lambda kv: D.sort_key(kv[0]))[1]

    return run


_HANDLERS[SUM] = _aggregate(SUM)
_HANDLERS[MIN] = _aggregate(MIN)
_HANDLERS[MAX] = _aggregate(MAX)


@handles(NTH)
def _nth(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    n = ev.darg(args, 1, scope, path)
    items = ev.items(source, path + (0,))
    try:
        return items[n]
    except (IndexError, TypeError):
        raise non_existence(f"Index out of bounds: {n}", path) from None


def _field(ev: Evaluator, source: Any, key: Any, path: Path) -> Any:
    if isinstance(source, RowVal):
        if source.doc is None:
            raise non_existence("Cannot perform bracket on a non-object non-sequence `null`.", path)
        source = source.doc
    if isinstance(key, str):
        if isinstance(source, dict):
            if key not in source:
                raise non_existence(f"No attribute `{key}` in object:\n{D.pretty(source)}", path)
            return source[key]
        if isinstance(source, (list, Seq, TableVal)):
            items = ev.items(source, path)
            out = [i[key] for i in items if isinstance(i, dict) and key in i]
            return out if isinstance(source, list) else Seq(out)
        if source is None:
            raise non_existence("Cannot perform bracket on a non-object non-sequence `null`.", path)
        raise logic(
            f"Cannot perform bracket on a non-object non-sequence `{D.pretty(source)}`.", path
        )
    if D.is_number(key):
        items = ev.items(source, path)
        if not isinstance(key, int):
            raise logic(f"Number not an integer: {key}", path)
        try:
            return items[key]
        except IndexError:
            raise non_existence(f"Index out of bounds: {key}", path) from None
    raise logic(f"Expected NUMBER or STRING as second argument to `bracket` but found {D.type_name(key)}.", path)


@handles(BRACKET, GET_FIELD)
def _bracket(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    key = ev.darg(args, 1, scope, path)
    return _field(ev, source, key, path)


@handles(HAS_FIELDS)
def _has_fields(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.datum(ev.arg(args, 0, scope, path), path + (0,))
    names = [ev.darg(args, i, scope, path) for i in range(1, len(args))]

    def has(doc: Any) -> bool:
        return isinstance(doc, dict) and all(n in doc and doc[n] is not None for n in names)

    if isinstance(source, list):
        return [d for d in source if has(d)]
    return has(source)


def _pluck_or_without(pluck: bool) -> Handler:
    def run(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
        source = ev.arg(args, 0, scope, path)
        names: list[Any] = []
        for i in range(1, len(args)):
            v = ev.darg(args, i, scope, path)
            names.extend(v if isinstance(v, list) else [v])

        def one(doc: Any) -> Any:
            if not isinstance(doc, dict):
                raise logic(f"Expected type OBJECT but found {D.type_name(doc)}.", path)
            if pluck:
                return {k: doc[k] for k in names if k in doc}
            return {k: v for k, v in doc.items() if k not in names}

        if isinstance(source, (list, Seq, TableVal)):
            items = [one(d) for d in ev.items(source, path + (0,))]
            return items if isinstance(source, list) else Seq(items)
        return one(ev.datum(source, path + (0,)))

    return run


_HANDLERS[PLUCK] = _pluck_or_without(True)
_HANDLERS[WITHOUT] = _pluck_or_without(False)


@handles(MERGE)
def _merge(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    patches = [ev.arg(args, i, scope, path) for i in range(1, len(args))]

    def one(doc: Any) -> Any:
        out = doc
        for p in patches:
            value = ev.call_datum(p, [doc], path) if isinstance(p, FuncVal) else ev.datum(p, path)
            out = D.merge(out, value)
        return out

    if isinstance(source, (list, Seq, TableVal)):
        items = [one(d) for d in ev.items(source, path + (0,))]
        return items if isinstance(source, list) else Seq(items)
    return one(ev.datum(source, path + (0,)))


@handles(KEYS)
def _keys(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    doc = ev.darg(args, 0, scope, path)
    if not isinstance(doc, dict):
        raise logic(f"Expected type OBJECT but found {D.type_name(doc)}.", path + (0,))
    return sorted(doc)


@handles(CONTAINS)
def _contains(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    items = ev.items(ev.arg(args, 0, scope, path), path + (0,))
    for i in range(1, len(args)):
        wanted = ev.arg(args, i, scope, path)
        if isinstance(wanted, FuncVal):
            if not any(D.truthy(ev.call_datum(wanted, [x], path)) for x in items):
                return False
        else:
            wanted = ev.datum(wanted, path + (i,))
            if not any(D.equal(x, wanted) for x in items):
                return False
    return True


@handles(APPEND)
def _append(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    arr = ev.darg(args, 0, scope, path)
    if not isinstance(arr, list):
        raise logic(f"Expected type ARRAY but found {D.type_name(arr)}.", path + (0,))
    return arr + [ev.darg(args, 1, scope, path)]


def _compare_chain(op: int) -> Handler:
    def run(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
        values = [ev.darg(args, i, scope, path) for i in range(len(args))]
        for a, b in zip(values, values[1:]):
            c = D.compare(a, b)
            ok = {EQ: c == 0, NE: c != 0, LT: c < 0, LE: c <= 0, GT: c > 0, GE: c >= 0}[op]
            if not ok:
                return False
        return True

    return run


for _op in (EQ, NE, LT, LE, GT, GE):
    _HANDLERS[_op] = _compare_chain(_op)


@handles(NOT)
def _not(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value = ev.darg(args, 0, scope, path)
    if not isinstance(value, bool):
        return not D.truthy(value)
    return not value


@handles(AND)
def _and(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value: Any = True
    for i in range(len(args)):
        value = ev.darg(args, i, scope, path)
        if not D.truthy(value):
            return value
    return value


@handles(OR)
def _or(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value: Any = False
    for i in range(len(args)):
        value = ev.darg(args, i, scope, path)
        if D.truthy(value):
            return value
    return value


@handles(BRANCH)
def _branch(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    if len(args) % 2 == 0:
        raise logic("Cannot call `branch` term with an even number of arguments.", path)
    for i in range(0, len(args) - 1, 2):
        if D.truthy(ev.darg(args, i, scope, path)):
            return ev.arg(args, i + 1, scope, path)
    return ev.arg(args, len(args) - 1, scope, path)


@handles(DEFAULT)
def _default(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    try:
        value = ev.darg(args, 0, scope, path)
    except RuntimeErr as e:
        if e.code != non_existence("", ()).code:
            raise
        fallback = ev.arg(args, 1, scope, path)
        if isinstance(fallback, FuncVal):
            return ev.call_datum(fallback, [e.message], path + (1,))
        return ev.datum(fallback, path + (1,))
    if value is None:
        fallback = ev.arg(args, 1, scope, path)
        if isinstance(fallback, FuncVal):
            return ev.call_datum(fallback, [None], path + (1,))
        return ev.datum(fallback, path + (1,))
    return value


@handles(ERROR)
def _error(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    message = ev.darg(args, 0, scope, path) if args else "Empty ERROR term outside a default block."
    raise RuntimeErr(str(message), path, 5000000)


def _arith(op: int) -> Handler:
    def run(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
        acc = ev.darg(args, 0, scope, path)
        for i in range(1, len(args)):
            value = ev.darg(args, i, scope, path)
            if op == ADD and isinstance(acc, str):
                if not isinstance(value, str):
                    raise logic(f"Expected type STRING but found {D.type_name(value)}.", path)
                acc = acc + value
                continue
            if op == ADD and isinstance(acc, list):
                if not isinstance(value, list):
                    raise logic(f"Expected type ARRAY but found {D.type_name(value)}.", path)
                acc = acc + value
                continue
            if op == ADD and D.ptype(acc) == "TIME" and D.is_number(value):
                acc = {**acc, "epoch_time": D.num(acc["epoch_time"] + value)}
                continue
            if op == MUL and isinstance(acc, list) and isinstance(value, int):
                acc = acc * value
                continue
            if not D.is_number(acc):
                raise logic(f"Expected type NUMBER but found {D.type_name(acc)}.", path)
            if not D.is_number(value):
                raise logic(f"Expected type NUMBER but found {D.type_name(value)}.", path)
            if op == ADD:
                acc = acc + value
            elif op == SUB:
                acc = acc - value
            elif op == MUL:
                acc = acc * value
            elif op == DIV:
                if value == 0:
                    raise logic("Cannot divide by zero.", path)
                acc = acc / value
            elif op == MOD:
                if value == 0:
                    raise logic("Cannot divide by zero.", path)
                acc = int(acc - value * int(acc / value))
            acc = D.num(acc)
        return acc

    return run


for _op in (ADD, SUB, MUL, DIV, MOD):
    _HANDLERS[_op] = _arith(_op)


@handles(COERCE_TO)
def _coerce_to(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value = ev.datum(ev.arg(args, 0, scope, path), path + (0,))
    target = ev.darg(args, 1, scope, path)
    if not isinstance(target, str):
        raise logic(f"Expected type STRING but found {D.type_name(target)}.", path + (1,))
    target = target.lower()
    if target == "string":
        if isinstance(value, str):
            return value
        return D.to_json(value)
    if target == "number":
        if D.is_number(value):
            return value
        if isinstance(value, str):
            try:
                return D.num(float(value))
            except ValueError:
                raise logic(f"Could not coerce `{value}` to NUMBER.", path) from None
    if target == "array":
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [[k, v] for k, v in sorted(value.items())]
    if target == "object":
        if isinstance(value, dict):
            return value
        if isinstance(value, list):
            return {pair[0]: pair[1] for pair in value}
    if target == "bool":
        return D.truthy(value)
    if target == D.type_name(value).lower():
        return value
    raise logic(f"Cannot coerce {D.type_name(value)} to {target.upper()}.", path)


@handles(TYPE_OF)
def _type_of(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value = ev.arg(args, 0, scope, path)
    if isinstance(value, TableVal):
        return "TABLE"
    if isinstance(value, RowVal):
        return "SELECTION<OBJECT>"
    if isinstance(value, Seq):
        if value.is_array:
            return "ARRAY"
        return "TABLE_SLICE" if value.table is not None else "SEQUENCE"
    return value_type(value)


@handles(NOW)
def _now(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return {"$reql_type$": "TIME", "epoch_time": D.num(round(ev.server.seconds(), 3)),
            "timezone": "+00:00"}


@handles(EPOCH_TIME)
def _epoch_time(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value = ev.darg(args, 0, scope, path)
    if not D.is_number(value):
        raise logic(f"Expected type NUMBER but found {D.type_name(value)}.", path + (0,))
    return {"$reql_type$": "TIME", "epoch_time": value, "timezone": "+00:00"}


@handles(TO_EPOCH_TIME)
def _to_epoch_time(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    value = ev.darg(args, 0, scope, path)
    if D.ptype(value) != "TIME":
        raise logic(f"Expected type PTYPE<TIME> but found {D.type_name(value)}.", path + (0,))
    return value["epoch_time"]


@handles(UUID)
def _uuid(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    if args:
        import uuid as _u

        name = ev.darg(args, 0, scope, path)
        return str(_u.uuid5(_u.UUID("91461c99-f89d-49d2-af96-d8e2e14e9b58"), str(name)))
    return ev.catalog.entropy.uuid("key")


@handles(FOR_EACH)
def _for_each(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    items = list(ev.items(ev.arg(args, 0, scope, path), path + (0,)))
    fn = ev.arg(args, 1, scope, path)
    result = empty_write_result()
    for item in items:
        value = ev.call_datum(fn, [item], path + (1,))
        for one in value if isinstance(value, list) else [value]:
            if not isinstance(one, dict):
                raise logic("FOR_EACH expects one or more basic write queries.", path + (1,))
            result = merge_write_results(result, one)
    return result


# Writes.


@handles(INSERT)
def _insert(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    value = ev.arg(args, 1, scope, path)
    docs = ev.items(value, path + (1,)) if isinstance(value, (Seq, TableVal)) else (
        value if isinstance(value, list) else [value]
    )
    conflict: Any = "error"
    if "conflict" in opts:
        conflict = ev.ev(opts["conflict"], scope, path + ("conflict",))
        if not isinstance(conflict, FuncVal) and conflict not in ("error", "replace", "update"):
            raise logic(
                f"Conflict option `{conflict}` unrecognized (options are \"error\", "
                "\"replace\" and \"update\").",
                path + ("conflict",),
            )
    return_changes = ev.opt(opts, "return_changes", scope, path, False)
    return ev.insert(table, list(docs), conflict, bool(return_changes), path)


def _write_fn(ev: Evaluator, spec: Any, path: Path) -> Callable[[dict[str, Any] | None], Any]:
    if isinstance(spec, FuncVal):
        return lambda doc: ev.call_datum(spec, [doc], path)
    value = ev.datum(spec, path)
    return lambda doc: value


def _update_or_replace(mode: str) -> Handler:
    def run(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
        target = ev.arg(args, 0, scope, path)
        table, targets = ev.write_targets(target, path + (0,))
        non_atomic = ev.opt(opts, "non_atomic", scope, path, False)
        if not non_atomic and not deterministic(args[1]):
            raise logic("Could not prove argument deterministic.  Maybe you want to use the "
                        "non_atomic flag?", path + (1,))
        spec = ev.arg(args, 1, scope, path)
        return_changes = ev.opt(opts, "return_changes", scope, path, False)
        return ev.modify(table, targets, _write_fn(ev, spec, path + (1,)), mode,
                         bool(return_changes), path)

    return run


_HANDLERS[UPDATE] = _update_or_replace("update")
_HANDLERS[REPLACE] = _update_or_replace("replace")


@handles(DELETE)
def _delete(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    target = ev.arg(args, 0, scope, path)
    table, targets = ev.write_targets(target, path + (0,))
    return_changes = ev.opt(opts, "return_changes", scope, path, False)
    return ev.modify(table, targets, lambda doc: None, "delete", bool(return_changes), path)


# Administration.


@handles(DB_LIST)
def _db_list(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    return ev.catalog.db_names()


@handles(DB_CREATE)
def _db_create(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    name = _check_name("Database", ev.darg(args, 0, scope, path), path + (0,))
    if name in ev.catalog.dbs or name == SYSTEM_DB:
        raise op_failed(f"Database `{name}` already exists.", path)
    db = Database(ev.catalog.entropy.uuid("db"), name)
    ev.catalog.dbs[name] = db
    ev.dirty = True
    return {"config_changes": [{"new_val": {"id": db.id, "name": name}, "old_val": None}],
            "dbs_created": 1}


@handles(DB_DROP)
def _db_drop(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    name = _check_name("Database", ev.darg(args, 0, scope, path), path + (0,))
    if name == SYSTEM_DB:
        raise op_failed("Database `rethinkdb` is special; you can't delete it.", path)
    db = ev.catalog.dbs.get(name)
    if db is None:
        raise op_failed(f"Database `{name}` does not exist.", path)
    for table in db.tables.values():
        table.abort_feeds("Changefeed aborted (table unavailable).")
    del ev.catalog.dbs[name]
    ev.dirty = True
    return {"config_changes": [{"new_val": None, "old_val": {"id": db.id, "name": name}}],
            "dbs_dropped": 1, "tables_dropped": len(db.tables)}


def _db_and_name(ev: Evaluator, args: list[Any], scope: Scope, path: Path) -> tuple[Database, Any]:
    if len(args) == 2:
        db_val = ev.arg(args, 0, scope, path)
        if not isinstance(db_val, DbVal):
            raise logic(f"Expected type DATABASE but found {value_type(db_val)}.", path + (0,))
        return db_val.db, ev.darg(args, 1, scope, path)
    return ev.default_db(path), ev.darg(args, 0, scope, path)


@handles(TABLE_CREATE)
def _table_create(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    db, name = _db_and_name(ev, args, scope, path)
    name = _check_name("Table", name, path)
    pk = ev.opt(opts, "primary_key", scope, path, "id")
    durability = ev.opt(opts, "durability", scope, path, "hard")
    if name in db.tables:
        raise op_failed(f"Table `{db.name}.{name}` already exists.", path)
    table = Table(ev.catalog.entropy.uuid("table"), db.name, name, pk, durability)
    db.tables[name] = table
    ev.dirty = True
    return {"config_changes": [{"new_val": table.config(ev.catalog.server_name), "old_val": None}],
            "tables_created": 1}


@handles(TABLE_DROP)
def _table_drop(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    db, name = _db_and_name(ev, args, scope, path)
    name = _check_name("Table", name, path)
    table = db.tables.get(name)
    if table is None:
        raise op_failed(f"Table `{db.name}.{name}` does not exist.", path)
    config = table.config(ev.catalog.server_name)
    table.abort_feeds("Changefeed aborted (table unavailable).")
    del db.tables[name]
    ev.dirty = True
    return {"config_changes": [{"new_val": None, "old_val": config}], "tables_dropped": 1}


@handles(TABLE_LIST)
def _table_list(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    if args:
        db_val = ev.arg(args, 0, scope, path)
        if not isinstance(db_val, DbVal):
            raise logic(f"Expected type DATABASE but found {value_type(db_val)}.", path + (0,))
        db = db_val.db
    else:
        db = ev.default_db(path)
    return sorted(db.tables)


@handles(WAIT)
def _wait(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    target = ev.arg(args, 0, scope, path) if args else DbVal(ev.default_db(path))
    if isinstance(target, DbVal):
        tables = list(target.db.tables.values())
    elif isinstance(target, TableVal):
        tables = [target.table]
    else:
        raise logic(f"Expected type TABLE or DATABASE but found {value_type(target)}.", path + (0,))
    return WaitVal({"ready": len(tables)}, tables)


@handles(INDEX_CREATE)
def _index_create(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    name = _check_name("Index", ev.darg(args, 1, scope, path), path + (1,))
    multi = bool(ev.opt(opts, "multi", scope, path, False))
    geo = bool(ev.opt(opts, "geo", scope, path, False))
    if name == table.primary_key:
        raise op_failed(
            f"Index name conflict: `{name}` is the name of the primary key.", path
        )
    if name in table.indexes:
        raise op_failed(f"Index `{name}` already exists on table `{table.qualified}`.", path)
    if len(args) == 3:
        function = args[2]
        fn_val = ev.arg(args, 2, scope, path)
        if not isinstance(fn_val, FuncVal):
            # A constant index value; wrap it like the driver would.
            function = [FUNC, [[MAKE_ARRAY, [1]], args[2]]]
        first_bt = preorder_id(ev.root, path + (2, 1)) if ev.root is not None else 9
    else:
        function = [FUNC, [[MAKE_ARRAY, [1]], [BRACKET, [[VAR, [1]], name]]]]
        first_bt = 9
    params = _func_params(function[1][0], path)
    index = ev.make_index(table, name, function, multi, geo,
                          blob=index_blob(function, params, first_bt))
    table.indexes[name] = index
    table.drop_index_cache(name)
    ev.dirty = True
    return {"created": 1}


@handles(INDEX_DROP)
def _index_drop(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    name = ev.darg(args, 1, scope, path)
    if name not in table.indexes:
        raise op_failed(f"Index `{name}` does not exist on table `{table.qualified}`.", path)
    del table.indexes[name]
    table.drop_index_cache(name)
    ev.dirty = True
    return {"dropped": 1}


@handles(INDEX_LIST)
def _index_list(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    return sorted(table.indexes)


@handles(INDEX_STATUS, INDEX_WAIT)
def _index_status(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    table = ev.table_of(ev.arg(args, 0, scope, path), path + (0,))
    names = [ev.darg(args, i, scope, path) for i in range(1, len(args))]
    for name in names:
        if name not in table.indexes:
            raise op_failed(f"Index `{name}` was not found on table `{table.qualified}`.", path)
    wanted = names or sorted(table.indexes)
    return [ev.index_status(table, table.indexes[n]) for n in wanted]


# Changefeeds.


@handles(CHANGES)
def _changes(ev: Evaluator, args: list[Any], opts: dict[str, Any], scope: Scope, path: Path) -> Any:
    source = ev.arg(args, 0, scope, path)
    flags = {
        name: bool(ev.opt(opts, name, scope, path, False))
        for name in ("include_initial", "include_states", "include_types", "squash")
    }
    if ev.opt(opts, "include_offsets", scope, path, False):
        raise logic("include_offsets is not implemented by the test server.", path)
    if isinstance(source, RowVal):
        feed = FeedVal("point", source.table, [], key=source.key, **flags)
    elif isinstance(source, TableVal):
        feed = FeedVal("table", source.table, [], **flags)
    elif isinstance(source, Seq) and source.table is not None and source.recipe is not None:
        kinds = [s.kind for s in source.recipe]
        if "limit" in kinds:
            if kinds[-2:] != ["order_by", "limit"] or kinds.count("limit") != 1 or \
                    any(k not in ("between", "order_by", "limit") for k in kinds):
                raise logic("Changefeeds on this `limit` are not implemented by the test server.", path)
            feed = FeedVal("limit", source.table, source.recipe, **flags)
        elif "order_by" in kinds:
            raise logic("Cannot call `changes` on an `order_by` without a `limit`"
                        " (the test server only supports `order_by.limit.changes`).", path)
        else:
            feed = FeedVal("table", source.table, source.recipe, **flags)
    else:
        raise logic(
            f"Changefeeds on {value_type(source)} are not implemented by the test server.",
            path + (0,),
        )
    if not ev.server.available(feed.table):
        raise op_failed(
            f"cannot subscribe to table `{feed.table.qualified}`: primary replica for shard "
            '["", +inf) not available',
            path,
        )
    return feed
