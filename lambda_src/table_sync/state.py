"""Watermarks in the target database: one row per synced table in `<STATE_SCHEMA>.table_sync_state`.

The row is updated in the same transaction as the chunk it describes, so what the table holds and
what the watermark says can never disagree: a crash rolls both back, a commit moves both.

Columns an operator may read (values are tagged JSON, see `table_sync.values`):

- `watermark`: the highest cursor value of the last finished pass; the next pass starts from it;
- `position`: `{"cursor": ..., "key": [...]}` of the last committed row of an unfinished pass;
- `delete_position`: the last target key checked by an unfinished delete reconciliation.

Deleting a table's row makes the next run copy the table again from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from table_sync import values

STATE_TABLE = "table_sync_state"
# First key of the two-int advisory lock; other pipelines use other namespaces.
LOCK_NAMESPACE = 0x7A5C


class StateMismatch(RuntimeError):
    """The stored watermark was made for another cursor than the configured one."""


@dataclass(frozen=True)
class Position:
    cursor: Any
    key: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"cursor": values.encode(self.cursor), "key": [values.encode(v) for v in self.key]}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Position:
        return cls(values.decode(document["cursor"]), tuple(values.decode(v) for v in document["key"]))


@dataclass(frozen=True)
class TableState:
    name: str
    exists: bool = False
    watermark: Any = None
    position: Position | None = None
    delete_position: tuple[Any, ...] | None = None
    deletes_completed_at: datetime | None = None
    last_started_at: datetime | None = None


def _table(schema: str) -> sql.Composable:
    return sql.Identifier(schema, STATE_TABLE)


def ensure_state_table(conn: Any, schema: str) -> None:
    """Create the schema and table once; commits."""
    with conn.cursor() as cur:
        # Concurrent first runs of several functions would race on the catalog; serialise them.
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_NAMESPACE,))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                """
                CREATE TABLE IF NOT EXISTS {} (
                    sync_name text PRIMARY KEY,
                    source text NOT NULL,
                    target text NOT NULL,
                    cursor_column text NOT NULL,
                    cursor_type text NOT NULL,
                    watermark jsonb,
                    position jsonb,
                    delete_position jsonb,
                    deletes_completed_at timestamptz,
                    rows_synced bigint NOT NULL DEFAULT 0,
                    last_started_at timestamptz,
                    last_finished_at timestamptz,
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """
            ).format(_table(schema))
        )
    conn.commit()


def load_states(conn: Any, schema: str) -> dict[str, dict[str, Any]]:
    """Every stored row by sync name (plain dicts; `to_state` checks one against its spec)."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT sync_name, cursor_column, cursor_type, watermark, position, delete_position, "
                "deletes_completed_at, last_started_at FROM {}"
            ).format(_table(schema))
        )
        names = [d[0] for d in cur.description]
        rows = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    conn.rollback()
    return rows


def to_state(name: str, row: dict[str, Any] | None, cursor_column: str, cursor_type: str) -> TableState:
    if row is None:
        return TableState(name)
    if (row["cursor_column"], row["cursor_type"]) != (cursor_column, cursor_type):
        raise StateMismatch(
            f"table {name}: the stored watermark belongs to {row['cursor_type']} cursor {row['cursor_column']!r}, "
            f"the configuration says {cursor_type} cursor {cursor_column!r}; delete its row from "
            f"{STATE_TABLE} to copy the table again, or give the sync another 'name'"
        )
    return TableState(
        name=name,
        exists=True,
        watermark=None if row["watermark"] is None else values.decode(row["watermark"]),
        position=None if row["position"] is None else Position.from_json(row["position"]),
        delete_position=(
            None if row["delete_position"] is None else tuple(values.decode(v) for v in row["delete_position"])
        ),
        deletes_completed_at=row["deletes_completed_at"],
        last_started_at=row["last_started_at"],
    )


def register(conn: Any, schema: str, name: str, source: str, target: str, cursor_column: str, cursor_type: str) -> None:
    """Insert the table's row if missing and stamp the start of this run; commits."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (sync_name, source, target, cursor_column, cursor_type, last_started_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (sync_name) DO UPDATE "
                "SET source = EXCLUDED.source, target = EXCLUDED.target, last_started_at = now()"
            ).format(_table(schema)),
            (name, source, target, cursor_column, cursor_type),
        )
    conn.commit()


def save_progress(
    cur: Any, schema: str, name: str, *, position: Position | None, watermark: Any, rows: int, finished: bool
) -> None:
    """Record a committed chunk; call inside the chunk's transaction.

    `finished` ends the pass: the watermark moves and the position is cleared.
    """
    cur.execute(
        sql.SQL(
            "UPDATE {} SET position = %s, watermark = %s, rows_synced = rows_synced + %s, updated_at = now(), "
            "last_finished_at = CASE WHEN %s THEN now() ELSE last_finished_at END WHERE sync_name = %s"
        ).format(_table(schema)),
        (
            None if position is None else Json(position.to_json()),
            None if watermark is None else Json(values.encode(watermark)),
            rows,
            finished,
            name,
        ),
    )
    if cur.rowcount != 1:
        raise RuntimeError(f"state row of table {name} vanished during the run")


def save_delete_progress(cur: Any, schema: str, name: str, position: tuple[Any, ...] | None, completed: bool) -> None:
    cur.execute(
        sql.SQL(
            "UPDATE {} SET delete_position = %s, updated_at = now(), "
            "deletes_completed_at = CASE WHEN %s THEN now() ELSE deletes_completed_at END WHERE sync_name = %s"
        ).format(_table(schema)),
        (None if position is None else Json([values.encode(v) for v in position]), completed, name),
    )


def try_lock(conn: Any, name: str) -> bool:
    """A session advisory lock per table: a second run (manual invoke, retry) skips a busy table."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, name))
        locked = bool(cur.fetchone()[0])
    conn.commit()
    return locked


def unlock(conn: Any, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_NAMESPACE, name))
    conn.commit()
