"""What a job needs from the database, checked before any row moves (runs and dry runs).

- The driving table exists, its key columns exist and are NOT NULL (a NULL key is in no range:
  its row would be skipped silently), a unique index lies within the key (so a key value names
  one row and the ranges do not overlap), and an index starts with the key columns in order (else
  every chunk's boundary query would scan and sort the table).
- Each INSERT's target exists and has a unique index (primary key or UNIQUE, not partial) whose
  columns are all among the inserted ones: that is what makes `INSERT IGNORE` / `ON CONFLICT`
  skip a replayed chunk's rows. An auto-increment key alone would insert every row again.

All problems of a job are reported together, in a `PlanError` naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backfill.idempotence import unquote
from backfill.jobs import Job
from pipeline_common.db import engine_of
from pipeline_common.errors import PermanentError


class PlanError(PermanentError):
    """The job does not fit the database; nothing ran."""


@dataclass(frozen=True)
class TableShape:
    name: str
    columns: dict[str, bool]  # lower-case column name -> nullable
    indexes: list[tuple[bool, tuple[str, ...]]]  # (unique, lower-case key columns in order)


def table_shape(cur: Any, table: str) -> TableShape | None:
    """Columns and plain (non-partial, non-expression) indexes of `table`, written as SQL would name
    it (`t`, `s.t`, quoted or not); None when it does not exist."""
    if engine_of(cur) == "mysql":
        return _mysql_shape(cur, table)
    return _pg_shape(cur, table)


def _mysql_shape(cur: Any, table: str) -> TableShape | None:
    parts = [unquote(part) for part in _split_name(table)]
    schema, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    scope = "TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s"
    cur.execute(
        f"SELECT COLUMN_NAME, IS_NULLABLE FROM information_schema.COLUMNS WHERE {scope} ORDER BY ORDINAL_POSITION",
        (schema, name),
    )
    columns = {str(column).lower(): nullable == "YES" for column, nullable in cur.fetchall()}
    if not columns:
        return None
    cur.execute(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        f"WHERE {scope} ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (schema, name),
    )
    grouped: dict[str, tuple[bool, list[str], bool]] = {}
    for index, non_unique, column, sub_part in cur.fetchall():
        unique, names, prefix = grouped.get(index, (int(non_unique) == 0, [], False))
        grouped[index] = (unique, [*names, str(column).lower()], prefix or sub_part is not None)
    # A prefix index (first N characters) neither orders nor makes the whole value unique.
    indexes = [(unique, tuple(names)) for unique, names, prefix in grouped.values() if not prefix]
    return TableShape(table, columns, indexes)


def _pg_shape(cur: Any, table: str) -> TableShape | None:
    cur.execute("SELECT to_regclass(%s)::oid", (table,))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    oid = row[0]
    cur.execute(
        "SELECT lower(attname), NOT attnotnull FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (oid,),
    )
    columns = dict(cur.fetchall())
    cur.execute(
        "SELECT i.indisunique, ARRAY(SELECT lower(a.attname) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE k.n <= i.indnkeyatts ORDER BY k.n) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
        "WHERE i.indrelid = %s AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree' "
        "AND i.indisvalid",
        (oid,),
    )
    indexes = [(bool(unique), tuple(names)) for unique, names in cur.fetchall()]
    return TableShape(table, columns, indexes)


def _split_name(table: str) -> list[str]:
    """`a.b` into its parts, dots inside quotes kept."""
    parts, current, quote = [], "", ""
    for char in table:
        if quote:
            current += char
            quote = "" if char == quote else quote
        elif char in '`"':
            quote, current = char, current + char
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def check_job(cur: Any, job: Job) -> None:
    """Raise `PlanError` listing everything about `job` that does not fit the database."""
    engine = engine_of(cur)
    problems = []
    driving = table_shape(cur, job.table.sql(engine))
    key = tuple(column.lower() for column in job.key)
    if driving is None:
        problems.append(f"driving table {job.table} does not exist (or is not visible to this user)")
    else:
        missing = [column for column in key if column not in driving.columns]
        if missing:
            problems.append(f"driving table {job.table} has no column(s) {', '.join(missing)}")
        nullable = [column for column in key if driving.columns.get(column)]
        if nullable:
            problems.append(
                f"key column(s) {', '.join(nullable)} of {job.table} allow NULL: rows with a NULL key are in no "
                "range and would be skipped (declare them NOT NULL)"
            )
        if not missing and not any(unique and set(columns) <= set(key) for unique, columns in driving.indexes):
            problems.append(
                f"no unique index of {job.table} lies within the key ({', '.join(job.key)}): key values must name "
                "one row each (use the primary key or a unique index)"
            )
        if not missing and not any(columns[: len(key)] == key for _, columns in driving.indexes):
            problems.append(
                f"no index of {job.table} starts with ({', '.join(job.key)}): each chunk's boundary query would "
                "scan and sort the table"
            )
    for index, statement in enumerate(job.statements):
        if statement.shape.kind == "update":
            continue
        target = table_shape(cur, statement.shape.table)
        where = f"statements[{index}]"
        if target is None:
            problems.append(f"{where}: target table {statement.shape.table} does not exist")
            continue
        inserted = {column.lower() for column in statement.shape.columns}
        unknown = sorted(inserted - set(target.columns))
        if unknown:
            problems.append(f"{where}: target {statement.shape.table} has no column(s) {', '.join(unknown)}")
        if not any(unique and set(columns) <= inserted for unique, columns in target.indexes):
            problems.append(
                f"{where}: target {statement.shape.table} has no primary key or unique index among the inserted "
                f"columns ({', '.join(statement.shape.columns)}): a replayed chunk would insert its rows again"
            )
    if problems:
        raise PlanError(f"job {job.name}: " + "; ".join(problems))
