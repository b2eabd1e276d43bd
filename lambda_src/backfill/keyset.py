"""Walking a job's driving table in key order, reading key values only.

A chunk is the key range `(lo, hi]`: `lo` is the last key of the previous chunk (or a value below
the smallest key), `hi` is found by an index seek, `SELECT key FROM t WHERE key > lo AND key <= end
ORDER BY key LIMIT 1 OFFSET n - 1`: the key of the n-th row after `lo`. No row passes through the
function; the statements then do the work on the server. `end` is the largest key when the job
started: rows inserted later belong to the application, not to the backfill, and the job ends.
Ranges are ordered by the database's own collation, as the statements compare them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backfill.catalog import PlanError
from backfill.jobs import Job
from backfill.sqltext import BoundSql, bind
from pipeline_common import values
from pipeline_common.identifiers import quote

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Keyset:
    engine: str
    table: str  # quoted
    columns: tuple[str, ...]  # quoted
    job: str

    @classmethod
    def for_job(cls, job: Job, engine: str) -> Keyset:
        return cls(engine, job.table.sql(engine), tuple(quote(c, engine) for c in job.key), job.name)

    @property
    def _list(self) -> str:
        return ", ".join(self.columns)

    @property
    def _row(self) -> str:
        return self.columns[0] if len(self.columns) == 1 else f"({self._list})"

    def _range(self) -> str:
        return f"{self._row} > :lo AND {self._row} <= :hi"

    def _bind(self, sql: str) -> BoundSql:
        return bind(sql, self.engine, len(self.columns))

    def edge(self, cur: Any, *, last: bool) -> Key | None:
        """The smallest (or largest) key; None for an empty table."""
        order = ", ".join(f"{c} DESC" if last else c for c in self.columns)
        cur.execute(f"SELECT {self._list} FROM {self.table} ORDER BY {order} LIMIT 1")
        row = cur.fetchone()
        return tuple(row) if row is not None else None

    def below(self, cur: Any, first: Key) -> Key:
        """A key the database orders before `first` (the smallest key): the first range's `lo`."""
        candidate = _predecessor(first[0])
        if candidate is not None:
            bound = bind(f"SELECT COUNT(*) FROM {self.table} WHERE {self.columns[0]} <= :lo", self.engine, 1, ("lo",))
            try:
                cur.execute(bound.text, bound.params({"lo": (values.as_parameter(candidate),)}))
                below_all = cur.fetchone()[0] == 0
            except Exception:  # noqa: BLE001 - the column's type refuses the value: no candidate
                below_all = False
                cur.connection.rollback()
            if below_all:
                return (candidate, *first[1:])
        raise PlanError(
            f"job {self.job}: cannot find a value below the smallest key {values.display(first[0])!r} of "
            f"{self.table}; set start_after to a value below it"
        )

    def next_bound(self, cur: Any, lo: Key, end: Key, rows: int) -> tuple[Key, int]:
        """(hi, driving rows in (lo, hi]) for a chunk of `rows` rows; the last chunk ends at `end`."""
        bound = self._bind(
            f"SELECT {self._list} FROM {self.table} WHERE {self._range()} "
            f"ORDER BY {self._list} LIMIT 1 OFFSET {int(rows) - 1}"
        )
        cur.execute(bound.text, bound.params({"lo": params(lo), "hi": params(end)}))
        row = cur.fetchone()
        if row is not None:
            return tuple(row), rows
        return end, self.count(cur, lo, end)

    def count(self, cur: Any, lo: Key, hi: Key) -> int:
        bound = self._bind(f"SELECT COUNT(*) FROM {self.table} WHERE {self._range()}")
        cur.execute(bound.text, bound.params({"lo": params(lo), "hi": params(hi)}))
        return int(cur.fetchone()[0])

    def estimate(self, cur: Any, lo: Key, hi: Key) -> int:
        """The planner's estimate of the rows in (lo, hi]: cheap, and close for a range of a key."""
        bound = self._bind(f"SELECT 1 FROM {self.table} WHERE {self._range()}")
        parameters = bound.params({"lo": params(lo), "hi": params(hi)})
        if self.engine == "postgresql":
            cur.execute("EXPLAIN (FORMAT JSON) " + bound.text, parameters)
            plan = cur.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return int(plan[0]["Plan"]["Plan Rows"])
        cur.execute("EXPLAIN " + bound.text, parameters)
        names = [d[0].lower() for d in cur.description]
        return int(sum(int(row[names.index("rows")] or 0) for row in cur.fetchall()))


def params(key: Key) -> tuple[Any, ...]:
    return tuple(values.as_parameter(value) for value in key)


def _predecessor(value: Any) -> Any:
    """A value of the same type ordered before `value`, or None when there is none to try."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | Decimal | float):
            return value - 1
        if isinstance(value, datetime | date):
            return value - timedelta(days=1)
    except OverflowError:
        return None
    if isinstance(value, str):
        return "" if value else None
    if isinstance(value, bytes | bytearray | memoryview):
        return b"" if bytes(value) else None
    if isinstance(value, uuid.UUID):
        zero = uuid.UUID(int=0)
        return zero if value != zero else None
    return None
