"""Delete reconciliation: remove target rows whose primary key no longer exists in the source.

Cursors only see rows that still exist, so deletes need a separate walk. The target's keys are
read in key order, `chunk_size` at a time; the source is asked which of exactly those keys it
still has (an indexed `IN` lookup, never a range, so differing collations between the source and
PostgreSQL cannot make a live row look deleted); the rest are deleted. Each chunk commits with
its progress, so the walk resumes after a crash or a deadline stop.

Cost per reconciliation: a full scan of the target's primary key index plus one key lookup
statement on the source per chunk. `interval_minutes` spaces reconciliations out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg2 import errors, sql

from pipeline_common.deadline import Deadline, Pacer, bound_statements
from table_sync import source as src
from table_sync import state
from table_sync.dialect import Dialect, key_lookup_sql
from table_sync.plan import TablePlan
from table_sync.results import ConnectionProvider, TableResult


def comparable(value: Any) -> Any:
    """One key value in a form both databases' drivers agree on.

    Text compares case-insensitively and without trailing spaces, as SQL Server and MySQL
    collations do by default: when in doubt a row is kept, never deleted.
    """
    if isinstance(value, str):
        return value.rstrip(" ").casefold()
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def is_due(current: state.TableState, interval_seconds: float, now: datetime) -> bool:
    if current.delete_position is not None or current.deletes_completed_at is None:
        return True
    return (now - current.deletes_completed_at).total_seconds() >= interval_seconds


def reconcile_deletes(
    plan: TablePlan,
    source: ConnectionProvider,
    dialect: Dialect,
    target_conn: Any,
    state_schema: str,
    deadline: Deadline,
    current: state.TableState,
    result: TableResult,
) -> str:
    """Walk the target's keys; returns `finished`, `continues` (deadline) or `not_due`."""
    spec = plan.spec
    if not is_due(current, spec.deletes.interval.total_seconds(), datetime.now(UTC)):
        return "not_due"
    position = current.delete_position
    pacer = Pacer(deadline)
    source_conn = source.get()
    try:
        while pacer.fits():
            with pacer.unit():
                try:
                    with target_conn.cursor() as cur:
                        bound_statements(cur, pacer)
                    keys = _target_keys(target_conn, plan, position, spec.deletes.chunk_size)
                    last = len(keys) < spec.deletes.chunk_size
                    gone = []
                    if keys:
                        statement, params = key_lookup_sql(dialect, plan.shape, keys)
                        rows = src.fetch_rows(source_conn, statement, params)
                        present = {tuple(comparable(v) for v in row) for row in rows}
                        source_conn.rollback()
                        gone = [k for k in keys if tuple(comparable(v) for v in k) not in present]
                        position = keys[-1]
                    with target_conn.cursor() as cur:
                        deleted = _delete(cur, plan, gone) if gone else 0
                        state.save_delete_progress(
                            cur, state_schema, spec.name, None if last else position, completed=last
                        )
                    target_conn.commit()
                except errors.QueryCanceled:  # bound_statements: the deadline came mid-chunk
                    target_conn.rollback()
                    return "continues"
                result.rows_deleted += deleted
                if last:
                    return "finished"
        return "continues"
    finally:
        with contextlib.suppress(Exception):
            source_conn.rollback()


def _target_keys(conn: Any, plan: TablePlan, after: Sequence[Any] | None, limit: int) -> list[tuple[Any, ...]]:
    key = sql.SQL(", ").join(sql.Identifier(k) for k in plan.target_key)
    statement = sql.SQL("SELECT {key} FROM {table}").format(key=key, table=plan.spec.target.pg())
    params: list[Any] = []
    if after is not None:
        placeholders = sql.SQL(", ").join(sql.Placeholder() * len(after))
        statement += sql.SQL(" WHERE ({key}) > ({values})").format(key=key, values=placeholders)
        params.extend(after)
    statement += sql.SQL(" ORDER BY {key} LIMIT %s").format(key=key)
    params.append(limit)
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return [tuple(row) for row in cur.fetchall()]


def _delete(cur: Any, plan: TablePlan, keys: Sequence[Sequence[Any]]) -> int:
    key = sql.SQL(", ").join(sql.Identifier(k) for k in plan.target_key)
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(plan.target_key)))
    statement = sql.SQL("DELETE FROM {table} WHERE ({key}) IN ({rows})").format(
        table=plan.spec.target.pg(), key=key, rows=sql.SQL(", ").join([row] * len(keys))
    )
    cur.execute(statement, [v for k in keys for v in k])
    return int(cur.rowcount)
