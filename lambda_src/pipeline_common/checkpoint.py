"""Checkpoints: named progress rows with typed positions, written in the caller's transaction.

A pipeline that works through something in units (chunks of a table, passes of a sync, statements
of a migration) keeps one row per job in a checkpoint table and updates it in the same
transaction as the unit's data, so the data and "how far we got" commit or roll back together: a
crash or a deadline stop resumes right after the last committed unit. That needs a transactional
table: PostgreSQL, or InnoDB on MySQL/MariaDB (the table is created with ENGINE=InnoDB).

A `CheckpointTable` declares the table's columns by role, so a pipeline names its own columns and
an existing table keeps its layout:

- `name_column`: the job's name, the primary key;
- `identity`: text set when the row is created and never changed (what the positions refer to,
  e.g. the cursor column; a caller compares them to its configuration before resuming);
- `labels`: text refreshed at every `start` (e.g. the source and target names);
- `positions`: typed position documents (JSON, see `pipeline_common.values`);
- `counters`: bigints advanced by `save(add=...)`;
- `stamps`: timestamps set to now by `start(stamp=...)` or `save(stamp=...)`;
- `updated_at`: set by every write.

Usage, per unit of work::

    table.ensure(conn)                                   # once; DDL under a lock, commits
    table.start(cur, "orders", labels={...}, stamp="started_at"); conn.commit()
    ... write the chunk with cur ...
    table.save(cur, "orders", positions={"position": (last_id,)}, add={"rows": n})
    conn.commit()                                        # chunk and checkpoint together

`lock_key(name)` is the advisory lock key of a job, for "one runner per job" (`pipeline_common.locks`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_common import values
from pipeline_common.db import engine_of
from pipeline_common.errors import RetryableError
from pipeline_common.identifiers import mysql_quote, validate_identifier
from pipeline_common.locks import Ddl, LockKey, ddl_key


class CheckpointLost(RetryableError):
    """The row vanished while a run was writing it (an operator deleted it to start over); the
    unit's transaction must roll back, and the next run starts from scratch."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    values: Mapping[str, Any]  # every column but the name; positions decoded to their types

    def __getitem__(self, column: str) -> Any:
        return self.values[column]


@dataclass(frozen=True)
class CheckpointTable:
    schema: str  # on MySQL/MariaDB: the database
    table: str
    name_column: str = "name"
    identity: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    positions: tuple[str, ...] = ("position",)
    counters: tuple[str, ...] = ("rows_done",)
    stamps: tuple[str, ...] = ("started_at", "finished_at")
    _ddl: dict[str, Ddl] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in (self.schema, self.table, self.name_column, *self._columns()):
            validate_identifier(name, "column")
        columns = [self.name_column, *self._columns()]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"checkpoint table {self.qualified}: columns named twice: {', '.join(repeated)}")

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def lock_key(self, name: str) -> LockKey:
        """The advisory lock of one job: one runner per job."""
        return LockKey(self.qualified, name)

    def ensure(self, conn: Any) -> None:
        """Create the schema and table when missing, once per connection; commits."""
        engine = engine_of(conn)
        if engine not in self._ddl:
            self._ddl[engine] = Ddl(ddl_key(self.schema), self.create_statements(conn))
        self._ddl[engine].ensure(conn)

    def load(self, cur: Any, name: str) -> Checkpoint | None:
        rows = self._select(cur, f" WHERE {self._q(cur, self.name_column)} = %s", (name,))
        return rows.get(name)

    def load_all(self, cur: Any) -> dict[str, Checkpoint]:
        return self._select(cur, "", ())

    def start(
        self, cur: Any, name: str, *, identity: Mapping[str, str] = {}, labels: Mapping[str, str] = {}, stamp: str = ""
    ) -> None:
        """Create the job's row if missing (with its identity), refresh its labels and stamp."""
        self._known(identity, self.identity, "identity")
        self._known(labels, self.labels, "labels")
        if stamp:
            self._known([stamp], self.stamps, "stamps")
        q = lambda column: self._q(cur, column)  # noqa: E731 - a short local alias
        now = self._now(cur)
        inserted = [self.name_column, *identity, *labels, "updated_at", *([stamp] if stamp else [])]
        placeholders = ["%s"] * (1 + len(identity) + len(labels)) + [now] * (1 + bool(stamp))
        refreshed = [f"{q(c)} = %s" for c in labels] + [f"{q(c)} = {now}" for c in ("updated_at", stamp) if c]
        if engine_of(cur) == "mysql":
            conflict = "ON DUPLICATE KEY UPDATE " + ", ".join(refreshed)
        else:
            conflict = f"ON CONFLICT ({q(self.name_column)}) DO UPDATE SET " + ", ".join(refreshed)
        cur.execute(
            f"INSERT INTO {self._table(cur)} ({', '.join(map(q, inserted))}) "
            f"VALUES ({', '.join(placeholders)}) {conflict}",
            (name, *identity.values(), *labels.values(), *labels.values()),
        )

    def save(
        self,
        cur: Any,
        name: str,
        *,
        positions: Mapping[str, Any] = {},
        add: Mapping[str, int] = {},
        stamp: Collection[str] = (),
    ) -> None:
        """Record progress in the caller's transaction: set `positions` (None clears one), add to
        counters, stamp. Raises `CheckpointLost` when the job has no row."""
        self._known(positions, self.positions, "positions")
        self._known(add, self.counters, "counters")
        self._known(stamp, self.stamps, "stamps")
        q = lambda column: self._q(cur, column)  # noqa: E731
        mysql = engine_of(cur) == "mysql"
        now = self._now(cur)
        assignments = [f"{q(c)} = %s" for c in positions]
        assignments += [f"{q(c)} = {q(c)} + %s" for c in add]
        assignments += [f"{q(c)} = {now}" for c in stamp]
        # MySQL counts changed rows, not matched ones: updated_at must change for the count to say
        # the row exists, even for two writes within one microsecond.
        updated = f"GREATEST({now}, {q('updated_at')} + INTERVAL 1 MICROSECOND)" if mysql else now
        assignments.append(f"{q('updated_at')} = {updated}")
        params = [self._encode(cur, value) for value in positions.values()] + [int(n) for n in add.values()]
        cur.execute(
            f"UPDATE {self._table(cur)} SET {', '.join(assignments)} WHERE {q(self.name_column)} = %s",
            (*params, name),
        )
        if cur.rowcount != 1:
            raise CheckpointLost(f"checkpoint {name!r} in {self.qualified} vanished during the run")

    def delete(self, cur: Any, name: str) -> bool:
        cur.execute(f"DELETE FROM {self._table(cur)} WHERE {self._q(cur, self.name_column)} = %s", (name,))
        return cur.rowcount > 0

    # --- SQL for both engines ----------------------------------------------------------------

    def _columns(self) -> tuple[str, ...]:
        return (*self.identity, *self.labels, *self.positions, *self.counters, *self.stamps, "updated_at")

    def create_statements(self, conn: Any) -> list[str]:
        """The DDL `ensure` runs: the schema (PostgreSQL) and the table, for the connection's engine."""
        mysql = engine_of(conn) == "mysql"
        q = lambda column: self._q(conn, column)  # noqa: E731
        text, json_type = ("varchar(255)", "longtext") if mysql else ("text", "jsonb")
        stamp_type = "datetime(6)" if mysql else "timestamptz"
        columns = [f"{q(self.name_column)} {'varchar(191)' if mysql else 'text'} NOT NULL PRIMARY KEY"]
        columns += [f"{q(c)} {text} NOT NULL" for c in (*self.identity, *self.labels)]
        columns += [f"{q(c)} {json_type}" for c in self.positions]
        columns += [f"{q(c)} bigint NOT NULL DEFAULT 0" for c in self.counters]
        columns += [f"{q(c)} {stamp_type}" for c in self.stamps]
        columns.append(f"{q('updated_at')} {stamp_type} NOT NULL")
        table = f"{q(self.schema)}.{q(self.table)}"
        body = ",\n    ".join(columns)
        if mysql:
            return [f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"]
        return [f"CREATE SCHEMA IF NOT EXISTS {q(self.schema)}", f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n)"]

    def _select(self, cur: Any, where: str, params: tuple[Any, ...]) -> dict[str, Checkpoint]:
        columns = self._columns()
        names = ", ".join(self._q(cur, c) for c in (self.name_column, *columns))
        cur.execute(f"SELECT {names} FROM {self._table(cur)}{where}", params)
        mysql = engine_of(cur) == "mysql"
        found = {}
        for name, *row in cur.fetchall():
            stored = dict(zip(columns, row, strict=True))
            for column in self.positions:
                document = stored[column]
                if mysql and document is not None:
                    document = json.loads(document)
                stored[column] = values.decode_document(document)
            found[name] = Checkpoint(name, stored)
        return found

    def _encode(self, cur: Any, position: Any) -> Any:
        document = values.encode_document(position)
        if document is None:
            return None
        if engine_of(cur) == "mysql":
            return json.dumps(document, separators=(",", ":"))
        from psycopg2.extras import Json

        return Json(document)

    def _table(self, cur: Any) -> str:
        return f"{self._q(cur, self.schema)}.{self._q(cur, self.table)}"

    @staticmethod
    def _q(cur: Any, name: str) -> str:
        """`name` quoted by the driver (PostgreSQL) or in backticks after validation (MySQL)."""
        if engine_of(cur) == "mysql":
            return mysql_quote(name)
        from psycopg2 import sql

        return sql.Identifier(name).as_string(cur)

    @staticmethod
    def _now(cur: Any) -> str:
        return "UTC_TIMESTAMP(6)" if engine_of(cur) == "mysql" else "now()"

    def _known(self, given: Collection[str], declared: tuple[str, ...], role: str) -> None:
        unknown = [c for c in given if c not in declared]
        if unknown:
            raise ValueError(f"checkpoint table {self.qualified} has no {role} column(s) {', '.join(unknown)}")
