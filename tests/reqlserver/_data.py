# -*- test-case-name: tests.test_reqlserver -*-
"""The in-memory catalog of the test server: databases, tables, documents, indexes."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid as _uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.reqlserver._datum import canonical, sort_key

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
SYSTEM_DB = "rethinkdb"


class Entropy(Protocol):
    """Where run-dependent values come from (tests inject recorded ones)."""

    def uuid(self, purpose: str) -> str:
        """A UUID for ``purpose``: "server", "db", "table", "key" or "initial-db"."""

    def server_nonce(self) -> str:
        """The server's part of the SCRAM nonce."""

    def salt(self) -> bytes:
        """The SCRAM salt of the admin user."""


class RandomEntropy:
    """Fresh random values, as a real server would use."""

    def uuid(self, purpose: str) -> str:
        return str(_uuid.uuid4())

    def server_nonce(self) -> str:
        return base64.b64encode(os.urandom(15)).decode("ascii")

    def salt(self) -> bytes:
        return os.urandom(16)


# A change listener receives (old document or None, new document or None).
Listener = Callable[[Any, Any], None]


@dataclass
class Index:
    name: str
    function: Any  # the FUNC term as sent by the driver
    multi: bool
    geo: bool
    keys_of: Callable[[dict[str, Any]], list[Any]]
    query: str
    blob: str


@dataclass
class Table:
    id: str
    db: str
    name: str
    primary_key: str
    durability: str = "hard"
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    aborters: list[Callable[[str], None]] = field(default_factory=list)
    _scan: list[dict[str, Any]] | None = None
    _key_cache: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.db}.{self.name}"

    def config(self, server_name: str) -> dict[str, Any]:
        return {
            "db": self.db,
            "durability": self.durability,
            "id": self.id,
            "indexes": sorted(self.indexes),
            "name": self.name,
            "primary_key": self.primary_key,
            "shards": [
                {
                    "nonvoting_replicas": [],
                    "primary_replica": server_name,
                    "replicas": [server_name],
                }
            ],
            "write_acks": "majority",
            "write_hook": None,
        }

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.docs.get(canonical(key))

    def scan(self) -> list[dict[str, Any]]:
        """All documents in primary key order (the real server uses shard hash order)."""
        if self._scan is None:
            pk = self.primary_key
            self._scan = sorted(self.docs.values(), key=lambda d: sort_key(d[pk]))
        return self._scan

    def index_keys(self, index: Index, doc: dict[str, Any]) -> list[Any]:
        cache = self._key_cache.setdefault(index.name, {})
        ckey = canonical(doc[self.primary_key])
        keys = cache.get(ckey)
        if keys is None:
            keys = index.keys_of(doc)
            cache[ckey] = keys
        return keys

    def write(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Store one change (insert, replace or delete) and tell the listeners."""
        doc = new if new is not None else old
        assert doc is not None
        ckey = canonical(doc[self.primary_key])
        if new is None:
            self.docs.pop(ckey, None)
        else:
            self.docs[ckey] = new
        self._scan = None
        for cache in self._key_cache.values():
            cache.pop(ckey, None)
        for listener in list(self.listeners):
            listener(old, new)

    def drop_index_cache(self, name: str) -> None:
        self._key_cache.pop(name, None)

    def abort_feeds(self, message: str) -> None:
        for aborter in list(self.aborters):
            aborter(message)
        self.aborters.clear()
        self.listeners.clear()


@dataclass
class Database:
    id: str
    name: str
    tables: dict[str, Table] = field(default_factory=dict)


class Catalog:
    """Every database of one server; survives a stop/restart of the listener."""

    def __init__(self, entropy: Entropy, server_name: str) -> None:
        self.entropy = entropy
        self.server_name = server_name
        self.server_id = entropy.uuid("server")
        self.dbs: dict[str, Database] = {}
        self.dbs["test"] = Database(entropy.uuid("initial-db"), "test")

    def db_names(self) -> list[str]:
        return sorted([SYSTEM_DB, *self.dbs])

    # Persistence: a JSON file written after each write query.

    def dump(self) -> dict[str, Any]:
        return {
            "server_id": self.server_id,
            "dbs": {
                db.name: {
                    "id": db.id,
                    "tables": {
                        t.name: {
                            "id": t.id,
                            "primary_key": t.primary_key,
                            "durability": t.durability,
                            "indexes": [
                                {"name": i.name, "function": i.function,
                                 "multi": i.multi, "geo": i.geo}
                                for i in t.indexes.values()
                            ],
                            "docs": list(t.docs.values()),
                        }
                        for t in db.tables.values()
                    },
                }
                for db in self.dbs.values()
            },
        }

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.dump(), f, ensure_ascii=False)
        os.replace(tmp, path)

    def load(
        self,
        data: dict[str, Any],
        make_index: Callable[[Table, str, Any, bool, bool], Index],
    ) -> None:
        self.server_id = data.get("server_id", self.server_id)
        self.dbs = {}
        for name, d in data["dbs"].items():
            db = Database(d["id"], name)
            self.dbs[name] = db
            for tname, t in d["tables"].items():
                table = Table(t["id"], name, tname, t["primary_key"], t.get("durability", "hard"))
                for doc in t["docs"]:
                    table.docs[canonical(doc[table.primary_key])] = doc
                for idx in t["indexes"]:
                    table.indexes[idx["name"]] = make_index(
                        table, idx["name"], idx["function"], idx["multi"], idx["geo"]
                    )
                db.tables[tname] = table

    def all_tables(self) -> Iterable[Table]:
        for db in self.dbs.values():
            yield from db.tables.values()
