"""The sync against real sources (PostgreSQL and MariaDB, via pyodbc and native drivers) into a
real PostgreSQL target."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import psycopg2
import pytest

from pipeline_common.deadline import Deadline
from table_sync.plan import PlanError

T0 = dt.datetime(2024, 3, 1, 12, 0, 0)


def _setup_items(source: Any, target: Any, versioned: bool = False) -> None:
    columns = "id int PRIMARY KEY, name varchar(100), amount decimal(12, 2), updated_at timestamp(6) NULL"
    if source.engine == "mysql":
        columns = columns.replace("timestamp(6) NULL", "datetime(6) NULL")
    if versioned:
        source.create_versioned("items", columns)
    else:
        source.execute(f"CREATE TABLE items ({columns})")
    target.execute(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text, amount numeric(12, 2), updated_at timestamp, "
        "version bigint)"
    )


def _insert(source: Any, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        source.execute("INSERT INTO items (id, name, amount, updated_at) VALUES (%s, %s, %s, %s)", row)


def _timestamp_table(**extra: Any) -> dict[str, Any]:
    return {
        "source": "public.items" if extra.pop("pg", True) else "items",
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "columns": ["id", "name", "amount", "updated_at"],
        **extra,
    }


def _source_name(source: Any) -> str:
    # MariaDB has no schemas: the database is the qualifier.
    return "public.items" if source.engine == "postgresql" else f"{source.provider.settings.database}.items"


def _ts_table(source: Any, **extra: Any) -> dict[str, Any]:
    return {
        "source": _source_name(source),
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "columns": ["id", "name", "amount", "updated_at"],
        **extra,
    }


def _rv_table(source: Any, **extra: Any) -> dict[str, Any]:
    return {
        "source": _source_name(source),
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "version", "type": "rowversion"},
        **extra,
    }


def _source_rows(source: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in source.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")]


def _target_rows(target: Any) -> list[tuple[Any, ...]]:
    return target.execute("SELECT id, name, amount, updated_at FROM public.items ORDER BY id")


def _state(target: Any, name: str = "public.items") -> dict[str, Any]:
    rows = target.execute(
        "SELECT watermark, position, rows_synced FROM pipeline_state.table_sync_state WHERE sync_name = %s", (name,)
    )
    return dict(zip(("watermark", "position", "rows_synced"), rows[0], strict=True)) if rows else {}


def _rows(n: int, start: int = 1, ts: dt.datetime = T0, step: dt.timedelta = dt.timedelta(seconds=1)) -> list:
    return [(i, f"item {i}", Decimal(i) / 4, ts + step * (i - start)) for i in range(start, start + n)]


def test_initial_full_copy_then_incremental_inserts_and_updates_only(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(25))
    report = sync([_ts_table(source, chunk_size=10)])
    (result,) = report.tables
    assert result.status == "finished", result
    assert (result.rows_read, result.rows_upserted, result.chunks) == (25, 25, 3)
    assert result.watermark_before is None
    assert result.watermark_after == T0 + dt.timedelta(seconds=24)
    assert _target_rows(target) == _source_rows(source)
    assert _state(target)["position"] is None

    # Nothing changed: the pass re-reads only the rows at the watermark (inclusive) and writes none.
    result = sync([_ts_table(source, chunk_size=10)]).tables[0]
    assert (result.rows_read, result.rows_upserted) == (1, 0)

    later = T0 + dt.timedelta(hours=1)
    source.execute("UPDATE items SET name = 'changed', updated_at = %s WHERE id IN (3, 7)", (later,))
    _insert(source, [(26, "new", Decimal("1.50"), later)])
    result = sync([_ts_table(source, chunk_size=10)]).tables[0]
    assert (result.rows_read, result.rows_upserted) == (4, 3)  # + the row at the old watermark
    assert result.watermark_before == T0 + dt.timedelta(seconds=24)
    assert result.watermark_after == later
    assert _target_rows(target) == _source_rows(source)
    assert result.to_json()["watermark_after"] == later.isoformat()
